//! Man pages and completions: generated from the --help definitions, committed, clean, and working in real shells.

mod common;

use common::Testbed;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_man_pages_and_completions_match_their_source() {
    let regenerate = std::env::var_os("BALEINE_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (path, content) in baleine::docs::generated_files() {
        let file = repo().join(&path);
        if regenerate {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &content).unwrap();
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(content.as_str()) {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {}: run `make man` and commit",
        stale.join(", ")
    );
}

fn man_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| ["1", "5", "7"].contains(&e.to_str().unwrap()))
        })
        .collect();
    pages.sort();
    pages
}

#[test]
fn every_man_page_renders_without_a_warning() {
    let pages = man_pages();
    assert!(pages.len() >= 9, "{pages:?}");
    for page in pages {
        let lint = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&page)
            .output()
            .expect("mandoc");
        let text = String::from_utf8_lossy(&lint.stdout).to_string()
            + &String::from_utf8_lossy(&lint.stderr);
        assert!(
            text.trim().is_empty(),
            "mandoc -T lint {}:\n{text}",
            page.display()
        );
        let groff = Command::new("groff")
            .args(["-ww", "-z", "-man"])
            .arg(&page)
            .output()
            .expect("groff");
        assert!(
            groff.stderr.is_empty(),
            "groff -ww {}: {}",
            page.display(),
            String::from_utf8_lossy(&groff.stderr)
        );
        let rendered = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&rendered.stdout).contains("NAME"),
            "{} does not render",
            page.display()
        );
    }
}

/// PATH with our built tools first, as after `make install`.
fn path_with_tools() -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_baleine-deploy"))
        .parent()
        .unwrap();
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn shell(tb: &Testbed, program: &str, script: &str) -> Output {
    Command::new(program)
        .args(["-c", script])
        .current_dir(repo())
        .env("PATH", path_with_tools())
        .env("BALEINE_CONFIG", tb.baleine_conf())
        .output()
        .expect("shell runs")
}

fn words(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_options_values_and_nodes() {
    let tb = Testbed::get();
    let complete = |line: &str| {
        let script = format!(
            "source /usr/share/bash-completion/bash_completion; source completions/bash/baleine-deploy; \
             COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; read -ra COMP_WORDS <<<\"$COMP_LINE\"; \
             [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _baleine_deploy; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        words(&shell(&tb, "bash", &script))
    };
    assert_eq!(complete("baleine-deploy --pu"), ["--pull"]);
    assert_eq!(complete("baleine-deploy --pull m"), ["missing"]);
    assert_eq!(complete("baleine-deploy -i busybox fit0"), tb.nodes);
}

#[test]
fn fish_completes_options_values_and_nodes() {
    let tb = Testbed::get();
    let complete = |line: &str| {
        let out = shell(
            &tb,
            "fish",
            &format!("source completions/fish/baleine-destroy.fish; complete -C '{line}'"),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(complete("baleine-destroy --dry"), ["--dry-run"]);
    assert_eq!(complete("baleine-destroy -y fit"), tb.nodes);
}

/// zsh's completion system only runs in an interactive shell: drive one in
/// tmux, press Tab, and read the screen.
#[test]
fn zsh_completes_options_and_nodes_interactively() {
    let tb = Testbed::get();
    let init = format!(
        "export PATH={} BALEINE_CONFIG={}; fpath=({}/completions/zsh $fpath); autoload -Uz compinit; compinit -u; PS1='> '",
        path_with_tools(),
        tb.baleine_conf().display(),
        repo().display()
    );
    let terminal = common::Terminal::start(&tb, "zsh -f");
    terminal.type_line(&init);
    terminal.keys(&["C-u", "baleine-ps --all-", "Tab"]);
    terminal.wait_for("baleine-ps --all-containers", 10);
    terminal.keys(&["C-u", "baleine-ps fit0", "Tab"]);
    let nodes = terminal.wait_for(&tb.nodes[tb.nodes.len() - 1], 10);
    for node in &tb.nodes {
        assert!(
            nodes.contains(node.as_str()),
            "{node} not offered:\n{nodes}"
        );
    }
}

#[test]
fn install_puts_tools_pages_and_completions_and_uninstall_takes_exactly_them_back() {
    let root = std::env::temp_dir().join(common::unique("baleine-install"));
    let conf = root.join("etc/baleine/baleine.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, "SSH = \"ssh -F mine\"\n").unwrap();
    let make = |target: &str| {
        let out = Command::new("make")
            .args([target, "PROFILE=dev", "PREFIX=/usr"])
            .arg(format!("DESTDIR={}", root.display()))
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    make("install");
    for file in [
        "usr/bin/baleine-deploy",
        "usr/bin/baleine-exec",
        "usr/share/man/man1/baleine-deploy.1",
        "usr/share/man/man5/baleine.conf.5",
        "usr/share/man/man7/baleine-records.7",
        "usr/share/bash-completion/completions/baleine-ps",
        "usr/share/zsh/site-functions/_baleine-ps",
        "usr/share/fish/vendor_completions.d/baleine-ps.fish",
    ] {
        assert!(root.join(file).exists(), "{file} not installed");
    }
    let page = Command::new("man")
        .args(["-M"])
        .arg(root.join("usr/share/man"))
        .args(["-P", "cat", "baleine-deploy"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&page.stdout).contains("baleine-deploy - run an image"));
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "SSH = \"ssh -F mine\"\n",
        "an existing configuration was overwritten"
    );
    make("uninstall");
    let mut left = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path)
            } else {
                left.push(path)
            }
        }
    }
    assert_eq!(left, [conf], "uninstall left or took files");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn uninstall_keeps_an_edited_configuration_and_ignores_paths_outside_the_prefix() {
    let root = std::env::temp_dir().join(common::unique("baleine-reinstall"));
    std::fs::create_dir_all(&root).unwrap();
    let make = |target: &str| {
        let out = Command::new("make")
            .args([target, "PROFILE=dev", "PREFIX=/usr"])
            .arg(format!("DESTDIR={}", root.display()))
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    make("install");
    let manifest = root.join("usr/share/baleine/installed-files");
    let listed = std::fs::read_to_string(&manifest).unwrap();
    // Paths as on the installed system: the manifest names no DESTDIR.
    assert!(!listed.contains(root.to_str().unwrap()), "{listed}");
    assert!(listed
        .lines()
        .any(|l| l.starts_with("/etc/baleine/baleine.conf ")));
    // A manifest line outside the prefix (a tampered or stale manifest) is not followed.
    let victim = root.join("etc/victim");
    std::fs::write(&victim, "keep me").unwrap();
    std::fs::write(
        &manifest,
        format!("{listed}/etc/victim\n/usr/../etc/victim\n"),
    )
    .unwrap();
    let conf = root.join("etc/baleine/baleine.conf");
    std::fs::write(&conf, "SSH = \"ssh -F edited\"\n").unwrap();
    let out = make("uninstall");
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("ignoring /etc/victim, outside /usr"),
        "{said}"
    );
    assert!(said.contains("keeping"), "{said}");
    assert!(
        victim.exists(),
        "uninstall removed a file outside its prefix"
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "SSH = \"ssh -F edited\"\n"
    );
    assert!(!root.join("usr/bin/baleine-deploy").exists());
    // Installed twice (an upgrade), an unedited configuration is still
    // known as ours, and goes with the rest.
    std::fs::remove_file(&conf).unwrap();
    make("install");
    make("install");
    make("uninstall");
    assert!(
        !conf.exists(),
        "an unedited configuration stayed after an upgrade and uninstall"
    );
    let _ = std::fs::remove_dir_all(root);
}
