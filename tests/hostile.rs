//! The hostile-input table: one test per class of attack or accident, each
//! against the real binaries, with the attacker played by the test itself
//! (a registry on loopback, a crafted stdin, a crafted configuration).
//!
//! | class | input | expected |
//! | --- | --- | --- |
//! | 1 code execution on Tab | registry names holding `$(…)` and backticks | nothing runs; only Docker-grammar names are offered |
//! | 2 credentials to another host | `Link: <http://other/…>` pagination; a Bearer realm on another host over plain HTTP | no request reaches the other host, list exits 1 naming it; the realm is asked without the password |
//! | 3 endless pagination | a registry that always has a next page | refused after a bound (exit 1); Ctrl-C ends it (exit 130); Tab gives it 2 s in all |
//! | 4 words changed by the shell | `{a,b}`, `=ls`, `~root` in a command | quoted in the script (tests/properties.rs runs them through the shells) |
//! | 5 panics and hangs | `--timeout 2^64-1`, `-j 100000000`, a malformed timestamp | exit 2; the timestamp reads as unknown |
//! | 6 unbounded memory | a stdin line over 16 MiB; a node's 20 MB of stderr without a newline | one input record, not echoed, the next line still counts; stderr cut at 16 MiB, an error of at most 64 KiB: its beginning and the cut note |
//! | 7 a record's node taken as a spec | `{"node":"0-3"}` | one node named `0-3` |
//! | 8 escape sequences on a terminal | a node's ESC, BEL and C1 CSI in its error | shown escaped in the terminal's summary |
//! | 10 a password others can read | REGISTRY_PASSWORD in a 644 file; REGISTRY_PASSWORD_FILE | a warning; a readable password file is refused (exit 2), a private one is used |
//! | 11 malformed deploy requests | a record's field of the wrong type, 10 MB in a field, an image with a newline, a digest of another repository | exit 2 naming the line and the field; no session opened, the nodes read with it not started |
//! | 12 an ignore file read loosely | `.dockerignore` a FIFO, a link to /dev/zero, 2 MB, a bad pattern | exit 2 at once naming the file (and line); nothing built |
//! | 13 a link planted where output goes | `DIR/fit01.out -> victim`; a directory others can write to | the link replaced, the victim untouched; the directory refused, exit 2 |
//! | 14 a blocking local input | a FIFO as the configuration or a source to send; a stdin that never ends (deploy, destroy, save, rmi) | exit 2 naming the file at once; SIGTERM ends the wait, 143 |
//! | 15 a file whose size lies while packed | `/proc/self/status` (size 0, bytes when read: a file that grew) sent by cp | exit 2 naming it: never bytes past its header, which a tar reader takes for entries of their own |
//! | 16 a first node that lies about its digest | the first node names another repository's digest; a digest the registry does not serve for the tag | its group fails (stage verify) before any other node is touched: no session opened there |
//!
//! Class 9 (rdsh's fences) needs sshd and docker: tests/rdsh.rs.

mod common;

use common::harness::{Test, TestEnv};
use common::{binary, json, Answer, Loopback, Request};
use std::process::Command;
use std::time::{Duration, Instant};

fn not_found() -> Answer {
    (404, vec![], b"{}".to_vec())
}

/// Class 1. The backend offers only names Docker's grammar allows, and the
/// bash completion never expands what it is given.
#[test]
fn completion_never_runs_code_that_a_registry_sends() {
    let registry = Loopback::serve(|request: &Request| {
        let target = request.target.as_str();
        if target.starts_with("/v2/_catalog") {
            json(r#"{"repositories":["ok","$(touch MARK1)","a`touch MARK2`b"]}"#)
        } else if target.starts_with("/v2/ok/tags/list") {
            json(r#"{"name":"ok","tags":["v1","$(touch MARK3)","`touch MARK4`"]}"#)
        } else if target.contains("/tags/list") {
            json(r#"{"name":"x","tags":["$(touch MARK5)"]}"#)
        } else {
            not_found()
        }
    });
    let env = TestEnv::new();
    let conf = env.write(
        "baleine.conf",
        &format!("REGISTRY_URL = 127.0.0.1:{}\n", registry.port),
    );
    let bins = std::path::Path::new(binary("baleine-deploy"))
        .parent()
        .unwrap();
    // A tool of the same name that prints hostile lines itself: the bash
    // layer alone must not run them either.
    let fake = env.path("fake");
    env.write(
        "fake/baleine-exec",
        "#!/bin/sh\necho '$(touch MARK6)'\necho '`touch MARK7`'\necho fit01\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            fake.join("baleine-exec"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let completions = concat!(env!("CARGO_MANIFEST_DIR"), "/completions/bash");
    let complete = |tool: &str, words: &str, path: String| -> String {
        let function = format!("_{}", tool.replace('-', "_"));
        let script = format!(
            "source {completions}/{tool}; COMP_WORDS=({words} ''); COMP_CWORD=${{#COMP_WORDS[@]}}; \
             COMP_CWORD=$((COMP_CWORD - 1)); {function}; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &script])
            .current_dir(env.path("home"))
            .env("PATH", path)
            .env("BALEINE_CONFIG", &conf)
            .env("HOME", env.path("home"))
            .output()
            .expect("bash runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let path = std::env::var("PATH").unwrap_or_default();
    let offered = complete(
        "baleine-deploy",
        "baleine-deploy -i",
        format!("{}:{path}", bins.display()),
    );
    assert_eq!(offered, "faraday.repo/ok:v1\n");
    let offered = complete(
        "baleine-exec",
        "baleine-exec",
        format!("{}:{path}", fake.display()),
    );
    assert!(offered.contains("fit01"), "{offered}");
    let marks: Vec<_> = std::fs::read_dir(env.path("home"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("MARK"))
        .collect();
    assert!(
        marks.is_empty(),
        "completion ran a registry's code: {marks:?}"
    );
}

/// baleine-list of the registry on loopback `port`, as user `me` with the
/// password `secret` in a private file.
fn list_with_a_password(port: u16) -> Test {
    let test = Test::new("baleine-list");
    let password = test.env.write_mode("password", "secret\n", 0o600);
    test.config(&format!("REGISTRY_URL = 127.0.0.1:{port}"))
        .config("REGISTRY_USER = me")
        .config(&format!("REGISTRY_PASSWORD_FILE = {}", password.display()))
}

/// Class 2. Pagination to another host is refused before any request goes there.
#[test]
fn credentials_never_follow_a_link_to_another_host() {
    let elsewhere = Loopback::serve(|_| json(r#"{"repositories":["stolen"]}"#));
    let next = format!("{}/v2/_catalog?last=a&n=100", elsewhere.url());
    let registry = Loopback::serve(move |request: &Request| {
        if request.authorization.is_none() {
            return (401, vec![], vec![]);
        }
        let link = format!("<{next}>; rel=\"next\"");
        let (status, mut headers, body) = json(r#"{"repositories":["mine"]}"#);
        headers.push(("Link".into(), link));
        (status, headers, body)
    });
    list_with_a_password(registry.port)
        .status(1)
        .stderr("another host")
        .stderr(&elsewhere.url())
        .run();
    assert!(
        elsewhere.requests().is_empty(),
        "the other host was asked: {:?}",
        elsewhere.requests()
    );
}

/// Class 2, tokens: a Bearer realm on another host over plain HTTP gets no
/// password (anyone on the path could read it); the registry's own origin
/// does.
#[test]
fn a_plain_http_token_realm_elsewhere_never_gets_the_password() {
    for elsewhere in [true, false] {
        let tokens = Loopback::serve(|_| json(r#"{"token":"t0k3n"}"#));
        let tokens_port = tokens.port;
        // The registry's own port, known once it serves.
        let own = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
        let own_port = own.clone();
        let registry = Loopback::serve(move |request: &Request| {
            if request.target.starts_with("/token") {
                return json(r#"{"token":"t0k3n"}"#);
            }
            if request.authorization.as_deref() == Some("Bearer t0k3n") {
                return json(r#"{"repositories":["mine"]}"#);
            }
            // Another origin for the token server: "localhost" is not
            // "127.0.0.1", though it is the same machine.
            let realm = match elsewhere {
                true => format!("http://localhost:{tokens_port}/token"),
                false => format!("http://127.0.0.1:{}/token", own_port.get().unwrap()),
            };
            let challenge = format!(
                "Bearer realm=\"{realm}\",service=\"registry\",scope=\"registry:catalog:*\""
            );
            (401, vec![("WWW-Authenticate".into(), challenge)], vec![])
        });
        own.set(registry.port).unwrap();
        list_with_a_password(registry.port).status(0).run();
        let asked: Vec<Request> = match elsewhere {
            true => tokens.requests(),
            false => registry
                .requests()
                .into_iter()
                .filter(|r| r.target.starts_with("/token"))
                .collect(),
        };
        assert!(
            !asked.is_empty(),
            "no token request (elsewhere: {elsewhere})"
        );
        for request in asked {
            assert_eq!(
                request.authorization.is_some(),
                !elsewhere,
                "elsewhere: {elsewhere}: {request:?}"
            );
        }
    }
}

/// A registry whose catalog always has one more page.
fn endless_registry(delay: Duration) -> Loopback {
    Loopback::serve(move |request: &Request| {
        std::thread::sleep(delay); // the attacker's pace, not a synchronisation
        let page: u64 = request
            .target
            .split("last=r")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let names: Vec<String> = (0..100)
            .map(|i| format!("\"r{}\"", page * 100 + i))
            .collect();
        let (status, mut headers, body) =
            json(&format!(r#"{{"repositories":[{}]}}"#, names.join(",")));
        headers.push((
            "Link".into(),
            format!("</v2/_catalog?last=r{}&n=100>; rel=\"next\"", page + 1),
        ));
        (status, headers, body)
    })
}

/// Class 3, bounded: an endless catalog is refused, not read until memory runs out.
#[test]
fn an_endless_catalog_is_refused_after_a_bound() {
    let registry = endless_registry(Duration::ZERO);
    Test::new("baleine-list")
        .config(&format!("REGISTRY_URL = 127.0.0.1:{}", registry.port))
        .status(1)
        .stderr("refused")
        .run();
}

/// Class 3, interruptible: Ctrl-C ends a listing in progress with 130.
#[test]
fn ctrl_c_ends_a_listing_of_an_endless_catalog() {
    let registry = endless_registry(Duration::from_millis(20));
    let env = TestEnv::new();
    let conf = env.write(
        "baleine.conf",
        &format!("REGISTRY_URL = 127.0.0.1:{}\n", registry.port),
    );
    let mut list = Command::new(binary("baleine-list"));
    common::scrub_environment(&mut list);
    let mut child = list
        .env("BALEINE_CONFIG", &conf)
        .env("HOME", env.path("home"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while registry.requests().len() < 3 {
        assert!(Instant::now() < deadline, "baleine-list never paged");
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
}

/// Class 3, at Tab: the completion gives an endless catalog its two seconds
/// in all, however quickly each page comes (MAX_PAGES would take minutes).
#[test]
fn tab_completion_gives_an_endless_catalog_two_seconds_in_all() {
    let registry = endless_registry(Duration::from_millis(50));
    let env = TestEnv::new();
    let conf = env.write(
        "baleine.conf",
        &format!("REGISTRY_URL = 127.0.0.1:{}\n", registry.port),
    );
    let mut deploy = Command::new(binary("baleine-deploy"));
    common::scrub_environment(&mut deploy);
    let out = deploy
        .env("BALEINE_COMPLETE", "repositories")
        .env("BALEINE_CONFIG", &conf)
        .env("HOME", env.path("home"))
        .output()
        .unwrap();
    assert!(out.status.success());
    // About 2 s of 50 ms pages, not the 10,000 pages of the bound.
    let pages = registry.requests().len();
    assert!(pages < 1000, "{pages} pages asked");
}

/// Class 4: words reach docker as typed (the script quotes them).
#[test]
fn braces_and_other_shell_syntax_are_quoted_in_the_script() {
    let records = Test::new("baleine-exec")
        .args(&[
            "--dry-run",
            "1",
            "--",
            "echo",
            "{a,b}",
            "x{1..3}",
            "=ls",
            "~root",
        ])
        .status(0)
        .nodes(1)
        .run();
    let script = records[0]["script"].as_str().unwrap();
    assert!(
        script.contains("container echo '{a,b}' 'x{1..3}' '=ls' '~root'"),
        "{script}"
    );
}

/// Class 5: numbers that would overflow or exhaust are usage errors.
#[test]
fn huge_numbers_are_refused_before_any_work() {
    for (tool, args) in [
        (
            "baleine-ps",
            &["--timeout", "18446744073709551615", "1"][..],
        ),
        ("baleine-ps", &["-j", "100000000", "1"]),
        (
            "baleine-destroy",
            &["--stop-timeout", "99999999999", "-y", "1"],
        ),
        // Every duration option, not only the fleet's --timeout: a deadline
        // of u64::MAX seconds overflows.
        (
            "baleine-deploy",
            &["-i", "busybox", "--wait", "18446744073709551615", "1"],
        ),
        (
            "baleine-build",
            &["-t", "x", "--timeout", "18446744073709551615", "."],
        ),
        ("baleine-logs", &["--timeout", "99999999h", "1"]),
    ] {
        Test::new(tool).args(args).status(2).run();
    }
}

/// Class 6: a runaway stdin line costs one input record, not the run.
#[test]
fn an_overlong_stdin_line_is_one_short_input_record() {
    let mut input = "x".repeat(17 * 1024 * 1024);
    input.push_str("\nfit01\n");
    let records = Test::new("baleine-ps")
        .args(&["--dry-run"])
        .stdin(&input)
        .status(1)
        .run();
    assert_eq!(records.len(), 2);
    let bad = records.iter().find(|r| r["stage"] == "input").unwrap();
    assert_eq!(bad["line"], 1);
    assert!(bad["error"].as_str().unwrap().len() < 200, "{bad}");
    assert!(records
        .iter()
        .any(|r| r["node"] == "fit01" && r["ok"] == true));
}

/// Class 6, echo: a long bad word is quoted only in part.
#[test]
fn a_long_bad_word_is_not_echoed_whole() {
    let word = format!("{};", "y".repeat(100_000));
    let records = Test::new("baleine-ps")
        .args(&["--dry-run"])
        .stdin(&format!("{word}\n"))
        .status(1)
        .run();
    let line = serde_json::to_string(&records[0]).unwrap();
    assert!(line.len() < 400, "{} bytes", line.len());
}

/// Class 6, a node's side: 20 MB of stderr without a newline (before any
/// output mark) is cut at 16 MiB where it is read, and the record carries a
/// bounded error: its beginning and its end, which says where it was cut.
#[test]
fn a_node_s_endless_stderr_gives_a_bounded_error() {
    let test = Test::new("baleine-ps");
    let ssh = test.env.write_script(
        "hostile-ssh",
        "#!/bin/sh\nhead -c 20000000 /dev/zero | tr '\\0' x >&2\necho ' the end' >&2\nexit 1\n",
    );
    let records = test
        .config(&format!("SSH = {}", ssh.display()))
        .args(&["1"])
        .status(1)
        .nodes(1)
        .run();
    let error = records[0]["error"].as_str().unwrap();
    assert!(error.len() < 100 * 1024, "{} bytes of error", error.len());
    assert!(
        error.contains("left out"),
        "{}",
        &error[..error.len().min(200)]
    );
    assert!(
        error.ends_with("[baleine: the node's output was cut at 16 MiB]"),
        "{}",
        &error[error.len().saturating_sub(200)..]
    );
}

/// Class 7: a record's node field is one node, never a range.
#[test]
fn a_record_s_node_field_is_not_expanded() {
    let records = Test::new("baleine-ps")
        .args(&["--dry-run"])
        .stdin("{\"node\":\"0-3\"}\n{\"node\":\"~fit01\"}\n")
        .status(1)
        .run();
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .any(|r| r["node"] == "0-3" && r["ok"] == true));
    assert!(records.iter().any(|r| r["stage"] == "input"));
}

/// Class 8: what a node sends reaches the terminal escaped, never obeyed.
/// The node is played by the test's own `ssh`, which answers with escape
/// sequences (clear the screen, set the window title) and fails.
#[test]
fn escape_sequences_from_a_node_are_shown_escaped_on_a_terminal() {
    let env = TestEnv::new();
    let ssh = env.write_script(
        "hostile-ssh",
        "#!/bin/sh\nprintf 'pwned \\033[2J\\033]0;title\\007 \\302\\233 31m\\n' >&2\nexit 255\n",
    );
    let (screen, status, _) = common::harness::on_a_terminal(
        "baleine-ps",
        "1-2",
        &format!("SSH = {}\n", ssh.display()),
        "",
    );
    assert_eq!(status, Some(1), "{screen:?}");
    // The failure summary quotes the node's words...
    assert!(screen.contains("pwned"), "{screen:?}");
    // ...with its control characters escaped: no ESC, BEL or C1 CSI left.
    for raw in ["\u{1b}[2J", "\u{1b}]0;", "\u{7}", "\u{9b}"] {
        assert!(
            !screen.contains(raw),
            "{raw:?} reached the terminal: {screen:?}"
        );
    }
    assert!(screen.contains("\\u{1b}[2J"), "{screen:?}");
}

/// Class 10: a password in a file others can read draws a warning; a
/// password file others can read is refused; a private one is used.
#[test]
fn registry_passwords_must_be_private() {
    let registry = Loopback::serve(|request: &Request| {
        // "me:secret"
        match request.authorization.as_deref() {
            Some("Basic bWU6c2VjcmV0") => json(r#"{"repositories":[]}"#),
            _ => (401, vec![], vec![]),
        }
    });
    let url = format!("REGISTRY_URL = 127.0.0.1:{}", registry.port);
    Test::new("baleine-list")
        .config(&url)
        .config("REGISTRY_USER = me")
        .config("REGISTRY_PASSWORD = secret")
        .config_mode(0o644)
        .status(0)
        .stderr("other users can read (mode 644)")
        .stderr("REGISTRY_PASSWORD_FILE")
        .run();
    for (mode, status) in [(0o644, 2), (0o600, 0)] {
        let test = Test::new("baleine-list");
        let password = test.env.write("password", "secret\n");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&password, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let test = test
            .config(&url)
            .config("REGISTRY_USER = me")
            .config(&format!("REGISTRY_PASSWORD_FILE = {}", password.display()))
            .config_mode(0o600)
            .status(status);
        match status {
            2 => test.stderr("chmod 600").run(),
            _ => test.run(),
        };
    }
}

/// Class 11: deploy requests on stdin are data from anywhere. A malformed
/// one (a field of the wrong type, 10 MB in a field, an image with a
/// newline, a digest of another repository) is exit 2 naming the line and
/// the field, and no node starts, not even one read before it.
#[test]
fn a_malformed_request_record_is_refused_and_no_node_starts() {
    let digest = format!("sha256:{}", "e".repeat(64));
    let huge = "x".repeat(10 << 20);
    for (record, field) in [
        (
            r#"{"node":"fit02","image":["busybox"]}"#.to_owned(),
            "field image: a string, not a list",
        ),
        (
            format!(r#"{{"node":"fit02","image":"busybox","command":["{huge}"]}}"#),
            "field command: longer than 65536 bytes",
        ),
        (
            r#"{"node":"fit02","image":"busybox\nrm -rf /"}"#.to_owned(),
            "field image: ",
        ),
        (
            format!(r#"{{"node":"fit02","image":"busybox","digest":"alpine@{digest}"}}"#),
            "is of repository alpine, not of the image busybox",
        ),
        (
            r#"{"node":"fit02","image":"busybox","options":"-e 'open"}"#.to_owned(),
            "field options: ",
        ),
    ] {
        let sessions = TestEnv::new();
        let log = sessions.path("sessions");
        let records = Test::new("baleine-deploy")
            .local_nodes()
            .env("LOCAL_SESSIONS", log.to_str().unwrap())
            .stdin(&format!(
                "{{\"node\":\"fit01\",\"image\":\"busybox\"}}\n{record}\nfit03\n"
            ))
            .status(2)
            .stderr("stdin line 2: field ")
            .stderr("no node started after it")
            .nodes(2)
            .run();
        let refused = records.iter().find(|r| r["node"] == "fit02").unwrap();
        assert_eq!(
            (&refused["stage"], &refused["line"]),
            (&"input".into(), &2.into()),
            "{refused}"
        );
        let error = refused["error"].as_str().unwrap();
        assert!(
            error.starts_with("stdin line 2: field ") && error.contains(field),
            "{error}"
        );
        assert!(
            error.len() < 1000,
            "the error does not echo the field whole"
        );
        let held = records.iter().find(|r| r["node"] == "fit01").unwrap();
        assert_eq!(held["stage"], "input", "{held}");
        assert!(
            held["error"]
                .as_str()
                .unwrap()
                .starts_with("not started: stdin line 2"),
            "{held}"
        );
        assert!(
            !log.exists(),
            "a session was opened: {:?}",
            std::fs::read_to_string(&log)
        );
    }
}

/// A context directory of the test's own with `Dockerfile`, and `ignore`
/// made by the caller.
fn build_context(env: &TestEnv) -> std::path::PathBuf {
    env.write("ctx/Dockerfile", "FROM busybox\nCOPY . /ctx\n");
    env.path("ctx")
}

/// Class 12. An ignore file that cannot be read as Docker reads it fails
/// the build at once, naming it: never a context sent without its rules.
#[test]
fn an_ignore_file_that_cannot_be_read_is_refused_naming_it() {
    let env = TestEnv::new();
    let ctx = build_context(&env);
    let ignore = ctx.join(".dockerignore");
    let build = |expected: &str| {
        Test::new("baleine-build")
            .args(&["-t", "exp:v1", "--on", "fit01", ctx.to_str().unwrap()])
            .status(2)
            .stderr(expected)
            .run();
    };
    nix::unistd::mkfifo(&ignore, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    build(".dockerignore: not a regular file");
    std::fs::remove_file(&ignore).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &ignore).unwrap();
    build(".dockerignore: not a regular file");
    std::fs::remove_file(&ignore).unwrap();
    std::fs::write(&ignore, "x".repeat(2 << 20)).unwrap();
    build("more than the 1048576 such a file may have");
    // Latin-1 in a comment is bytes, not a reason to drop the rules; a
    // pattern Docker refuses is refused with its line.
    std::fs::write(&ignore, b"# caf\xe9\n*.key\n[z-a]\n").unwrap();
    build(".dockerignore:3: syntax error in pattern");
    // The Dockerfile's own ignore file is the one read, when there is one.
    std::fs::write(&ignore, "*.key\n").unwrap();
    std::fs::write(ctx.join("Dockerfile.dockerignore"), "!\n").unwrap();
    build("Dockerfile.dockerignore:1: illegal exclusion pattern");
}

/// Class 13. Output files are created in their directory's handle: a link
/// planted where one goes is replaced, never written through; a directory
/// other users can write to is refused before anything runs.
#[test]
fn a_link_planted_in_an_output_directory_is_never_followed() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim = env.write("victim", "precious\n");
    std::os::unix::fs::symlink(&victim, out.join("fit01.out")).unwrap();
    Test::new("baleine-exec")
        .local_nodes()
        .args(&[
            "fit01",
            "--output-dir",
            out.to_str().unwrap(),
            "--",
            "echo",
            "hello",
        ])
        .status(0)
        .nodes(1)
        .run();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let written = out.join("fit01.out");
    assert!(!written.is_symlink());
    assert_eq!(std::fs::read_to_string(written).unwrap(), "hello\n");
    // A directory any user can write to: refused, nothing runs.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    for tool in ["baleine-exec", "baleine-logs"] {
        let mut args = vec!["fit01", "--output-dir", out.to_str().unwrap()];
        if tool == "baleine-exec" {
            args.extend(["--", "true"]);
        }
        Test::new(tool)
            .local_nodes()
            .args(&args)
            .status(2)
            .stderr("other users can write to it (mode 0777, no sticky bit)")
            .run();
    }
    let log = out.join("build.log");
    let ctx = build_context(&env);
    Test::new("baleine-build")
        .args(&[
            "-t",
            "exp:v1",
            "--log",
            log.to_str().unwrap(),
            "--dry-run",
            ctx.to_str().unwrap(),
        ])
        .status(2)
        .stderr("--log ")
        .stderr("other users can write to it")
        .run();
}

/// Waits until `pid` handles SIGTERM (its handlers are in): a signal sent
/// before would kill it as the default action does.
fn handles_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

/// Class 14. A local input that would block is refused at once, or its
/// wait ends with the signal.
#[test]
fn a_blocking_local_input_never_outlasts_a_signal() {
    let env = TestEnv::new();
    let fifo = env.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A FIFO as the configuration, or as a file to send: refused, named.
    let mut command = Command::new(binary("baleine-ps"));
    common::scrub_environment(&mut command);
    let out = command
        .args(["fit01"])
        .env("BALEINE_CONFIG", &fifo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");
    Test::new("baleine-cp")
        .args(&["fit01", "--to", "/in", "--", fifo.to_str().unwrap()])
        .status(2)
        .stderr("not a regular file or a directory")
        .run();
    // A stdin that never ends, read whole before any node starts: the
    // signal ends the wait, every node read so far gets its record.
    let conf = env.write("baleine.conf", &(env.base_config() + &env.local_nodes()));
    for (tool, args) in [
        (
            "baleine-deploy",
            vec!["-i", "busybox", "--bootstrap", "default"],
        ),
        ("baleine-save", vec!["-n", "exp:v1"]),
        ("baleine-destroy", vec!["-y"]),
        ("baleine-rmi", vec!["-y"]),
    ] {
        let mut command = Command::new(binary(tool));
        common::scrub_environment(&mut command);
        let mut child = command
            .args(&args)
            .env("BALEINE_CONFIG", &conf)
            .env("HOME", env.path("home"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let line = if tool == "baleine-rmi" {
            "exp:v1\n"
        } else {
            "fit01\n"
        };
        stdin.write_all(line.as_bytes()).unwrap();
        let pid = child.id();
        common::wait_until("the tool handles SIGTERM", 30, || handles_sigterm(pid));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(143),
            "{tool}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // What was read before the signal, if anything, got its record:
        // done already (destroy -y streams), or not started.
        for record in stdout.lines() {
            let record: serde_json::Value = serde_json::from_str(record).unwrap();
            assert!(
                record["ok"] == true || record["stage"] == "interrupted",
                "{tool}: {record}"
            );
        }
    }
}

/// Class 15. A file is packed as exactly the bytes its open descriptor's
/// size says, and one that has more (it grew, or it lies, as /proc's do)
/// is refused by name: its extra bytes would have been read as tar
/// entries (a log appended to during a copy delivering etc/cron.d/evil).
#[test]
fn a_file_that_grows_while_packed_is_refused_not_sent() {
    Test::new("baleine-cp")
        .args(&[
            "fit01",
            "--dry-run",
            "--to",
            "/in",
            "--",
            "/proc/self/status",
        ])
        .status(2)
        .stderr("/proc/self/status: changed while it was packed")
        .run();
}

/// Class 16. The first node of an image's group resolves the digest the
/// others run: it must be of the image's own repository and, where the
/// gateway reaches the registry, the registry's digest for the tag.
/// Otherwise no other node is touched (no session opened there).
#[test]
fn a_first_node_that_lies_about_its_digest_chooses_nothing_for_the_fleet() {
    let other = format!("sha256:{}", "e".repeat(64));
    let served = format!("sha256:{}", "a".repeat(64));
    let registry = Loopback::serve({
        let served = served.clone();
        move |request: &Request| match request.target.as_str() {
            "/v2/exp/manifests/v1" => (
                200,
                vec![("Docker-Content-Digest".into(), served.clone())],
                Vec::new(),
            ),
            _ => not_found(),
        }
    });
    let repo = format!("127.0.0.1:{}", registry.port);
    // What the first node says: its pull's Digest line (none: it is read
    // from the image's RepoDigests).
    for (image, pulled, digests, expected) in [
        (
            "busybox".to_owned(),
            String::new(),
            format!(r#"["alpine@{other}"]"#),
            "the first node named no digest of busybox".to_owned(),
        ),
        (
            format!("{repo}/exp:v1"),
            other.clone(),
            format!(r#"["{repo}/exp@{other}"]"#),
            format!("but the registry serves {served} for {repo}/exp:v1"),
        ),
    ] {
        let sessions = TestEnv::new();
        let log = sessions.path("sessions");
        let records = Test::new("baleine-deploy")
            .local_nodes()
            .config(&format!("REGISTRY_URL = {repo}\nSAVE_URL = {repo}"))
            .env("LOCAL_SESSIONS", log.to_str().unwrap())
            .env("FAKE_REPO_DIGESTS", &digests)
            .env("FAKE_PULL_DIGEST", &pulled)
            .args(&["-i", &image, "-j", "1", "fit01", "fit02", "fit03"])
            .status(1)
            .nodes(3)
            .run();
        for record in &records {
            assert_eq!(record["stage"], "verify", "{record}");
            assert!(
                record["error"].as_str().unwrap().contains(&expected),
                "{record}"
            );
        }
        // Only the first node had a session: the others were never touched.
        let touched = std::fs::read_to_string(&log).unwrap();
        assert_eq!(touched.lines().count(), 1, "{touched}");
    }
    // The registry's own digest: the group follows it.
    Test::new("baleine-deploy")
        .local_nodes()
        .config(&format!("REGISTRY_URL = {repo}\nSAVE_URL = {repo}"))
        .env("FAKE_REPO_DIGESTS", &format!(r#"["{repo}/exp@{served}"]"#))
        .env("FAKE_PULL_DIGEST", &served)
        .args(&["-i", &format!("{repo}/exp:v1"), "fit01", "fit02", "fit03"])
        .status(0)
        .nodes(3)
        .run();
}
