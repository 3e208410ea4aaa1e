//! `.dockerignore`, differentially: for a corpus of contexts and ignore files, what `COPY .` sees in an image built by the testbed's real `docker build` from the directory equals what it sees in one built by `baleine-build --on`, from the tar we pack.
//!
//! The testbed's docker has no buildx: its `docker build` is the classic
//! builder, whose client walks the context itself. Our packing follows
//! BuildKit, the builder Docker documents; the two differ where an
//! exception (`!`) holds a glob under an excluded directory (`*` then
//! `!**/*.md`: BuildKit sends `docs/a.md`, the classic client does not):
//! those cases are unit tests of domain::dockerignore, not rows here.

mod common;

use common::{records, stderr, tool, unique, Testbed};
use std::collections::BTreeSet;
use std::process::Command;

/// One case: the ignore file's bytes, and the files of the context.
struct Case {
    name: &'static str,
    ignore: &'static [u8],
    files: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "secrets",
        ignore: b"# secrets\n.git\n*.key\n**/.env\nlogs/\n!logs/keep.txt\n/build/*.o\n",
        files: &[
            ".git/config",
            "id.key",
            "sub/id.key",
            ".env",
            "a/b/.env",
            "logs/x.log",
            "logs/keep.txt",
            "build/m.o",
            "build/m.c",
            "src/main.rs",
        ],
    },
    Case {
        name: "latin1-classes",
        ignore: b"# caf\xe9 au lait\n*.[pk]em\n[Tt]oken.txt\n[!a]bc\n",
        files: &[
            "server.pem",
            "server.kem",
            "server.cem",
            "Token.txt",
            "token.txt",
            "xbc",
            "abc",
            "keep",
        ],
    },
    Case {
        name: "bom-and-spaces",
        ignore: b"\xef\xbb\xbfsecret.txt\n  other.txt  \r\n  #notacomment\n",
        files: &["secret.txt", "other.txt", "#notacomment", "kept.txt"],
    },
    Case {
        name: "everything-but",
        ignore: b"*\n!app\n!Dockerfile\n",
        files: &["app/main.py", "app/lib/util.py", "data.csv", "notes.md"],
    },
    Case {
        name: "double-stars",
        ignore: b"**/*.log\n!important.log\na**b\n**foo\nbar**\n",
        files: &[
            "x.log",
            "deep/er/y.log",
            "important.log",
            "ab",
            "a/b",
            "ax/y/b",
            "axb",
            "barfoo",
            "d/barfoo",
            "barbaz/q",
            "keep",
        ],
    },
    Case {
        name: "parent-results",
        ignore: b"a\n!a/b\na\nc/d\n!c\n",
        files: &["a/b", "a/c", "c/d", "c/e", "keep"],
    },
    Case {
        name: "regex-leaks",
        ignore: b"file\\d\n^foo*\nx[^y]z\n",
        files: &["file1", "filed", "foobar", "^foobar", "x/z", "xyz", "xqz"],
    },
    Case {
        name: "build-files-excluded",
        ignore: b"Dockerfile\n.dockerignore\n*.tmp\n",
        files: &["a.tmp", "b.txt"],
    },
];

/// The context of `case`.
fn context(case: &Case) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("ignore-{}", case.name)));
    for file in case.files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file.as_bytes()).unwrap();
    }
    std::fs::write(dir.join(".dockerignore"), case.ignore).unwrap();
    dir
}

/// A Dockerfile that lists what COPY sees, its RUN unique to `run` so that
/// no cache (the other build's, on the same daemon) hides the listing.
fn listing_dockerfile(dir: &std::path::Path, run: &str) {
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM busybox\nCOPY . /ctx\nRUN echo @@begin {run} && cd /ctx && find . | sort && echo @@end\n"
        ),
    )
    .unwrap();
}

/// The paths a build's output listed between its markers.
fn listed(output: &str, run: &str) -> BTreeSet<String> {
    let begin = format!("@@begin {run}");
    output
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| *l != "@@end")
        .filter(|l| l.starts_with('.'))
        .map(String::from)
        .collect()
}

#[test]
fn copy_sees_the_same_files_as_with_docker_s_own_client() {
    let tb = Testbed::get();
    let node = &tb.nodes[0];
    let socket = tb.dir.join("n").join(node).join("docker.sock");
    for case in CASES {
        let run = unique(case.name);
        let dir = context(case);
        listing_dockerfile(&dir, &format!("{run}-docker"));
        // Docker's own client reads the ignore file and sends the rest.
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["build", "--no-cache", "--force-rm"])
            .arg(&dir)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("docker runs");
        let theirs = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{}: docker build: {theirs}",
            case.name
        );
        // Ours packs it and the node builds from our tar.
        listing_dockerfile(&dir, &format!("{run}-ours"));
        let log = dir.with_extension("log");
        let out = tool(&tb, "baleine-build")
            .args(["-t", &format!("{run}:v1"), "--on", node, "--log"])
            .arg(&log)
            .arg(&dir)
            .output()
            .expect("baleine-build runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            case.name,
            stderr(&out)
        );
        assert_eq!(records(&out)[0]["ok"], true);
        let log_text = std::fs::read_to_string(&log).unwrap();
        let theirs = listed(&theirs, &format!("{run}-docker"));
        let ours = listed(&log_text, &format!("{run}-ours"));
        assert!(!theirs.is_empty(), "{}: nothing listed", case.name);
        assert!(
            !ours.is_empty(),
            "{}: nothing listed by ours: {log_text}",
            case.name
        );
        assert_eq!(ours, theirs, "{}: ours, then docker's", case.name);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&log);
    }
}
