//! Hermetic CLI tests: the real binaries, no testbed, no root services, no network but loopback.
//!
//! Each is one `Test` chain (tests/common/harness.rs), which also checks
//! the record invariant on every run.

mod common;

use baleine::remote::quote::quote_word;
use common::harness::Test;
use common::{json, Loopback};

const FLEET_TOOLS: [&str; 7] = [
    "baleine-deploy",
    "baleine-destroy",
    "baleine-save",
    "baleine-ps",
    "baleine-exec",
    "baleine-logs",
    "baleine-cp",
];
const ALL_TOOLS: [&str; 11] = [
    "baleine-deploy",
    "baleine-destroy",
    "baleine-save",
    "baleine-list",
    "baleine-ps",
    "baleine-exec",
    "baleine-logs",
    "baleine-cp",
    "baleine-rmi",
    "baleine-build",
    "rdsh",
];

#[test]
fn help_is_printed_on_stdout_with_status_0_by_every_tool() {
    for tool in ALL_TOOLS {
        Test::new(tool)
            .args(&["--help"])
            .status(0)
            .stdout("Usage:")
            .run();
    }
}

#[test]
fn dash_h_is_help_which_lists_version_and_shows_the_command_after_dashes() {
    for tool in ["baleine-deploy", "baleine-exec"] {
        Test::new(tool)
            .args(&["-h"])
            .status(0)
            .stdout("[-- <command...>]")
            .stdout("print the version and exit")
            .run();
        let help = std::process::Command::new(common::binary(tool))
            .arg("-h")
            .output()
            .unwrap()
            .stdout;
        let help = String::from_utf8(help).unwrap();
        // Wrapped to the width (80 off a terminal), but for the examples,
        // commands to copy whole; every option with its argument's name.
        let (before, examples) = help.split_once("\nExamples:\n").unwrap();
        let after = examples.split_once("\n\n").unwrap().1;
        for text in [before, after] {
            assert!(text.lines().all(|l| l.chars().count() <= 80), "{help}");
        }
        assert!(help.contains("  -V, --version "), "{help}");
        assert!(help.contains("  --timeout DURATION "), "{help}");
        assert!(help.contains("[-j N]"), "{help}");
    }
    Test::new("baleine-exec")
        .args(&["--help"])
        .stdout("  --stdin FILE ")
        .run();
    // cp's words after `--` are files, not a command.
    Test::new("baleine-cp")
        .args(&["-h"])
        .status(0)
        .stdout("[-- <source...>]")
        .run();
    Test::new("baleine-cp")
        .args(&["--to", "/x", "1", "a.txt"])
        .status(2)
        .stderr("copies the files given after --")
        .run();
    Test::new("baleine-ps")
        .args(&["-h"])
        .status(0)
        .stdout("Usage: baleine-ps")
        .run();
}

#[test]
fn timeouts_take_units() {
    let records = Test::new("baleine-exec")
        .args(&["--timeout", "5m", "--dry-run", "1", "--", "true"])
        .status(0)
        .nodes(1)
        .run();
    // The node's own timer is set to 300 s.
    let ssh = records[0]["ssh"].as_array().unwrap();
    assert!(ssh.last().unwrap().as_str().unwrap().contains("-lt 300 ]"));
    Test::new("baleine-ps")
        .args(&["--timeout", "5 minutes", "1"])
        .status(2)
        .stderr("90s, 5m, 1h30m")
        .run();
}

#[test]
fn version_names_the_tool_and_the_release() {
    for tool in ALL_TOOLS {
        Test::new(tool)
            .args(&["--version"])
            .status(0)
            .stdout(&format!("{tool} {}", env!("CARGO_PKG_VERSION")))
            .run();
    }
}

#[test]
fn an_unknown_option_is_a_usage_error_pointing_at_help() {
    for tool in FLEET_TOOLS
        .iter()
        .chain(&["baleine-list", "baleine-rmi", "baleine-build"])
    {
        Test::new(tool)
            .args(&["--no-such-option", "1"])
            .status(2)
            .stderr("Unrecognized argument: --no-such-option")
            .stderr("--help")
            .run();
    }
}

#[test]
fn the_default_timeout_is_the_one_the_help_states() {
    for (tool, seconds) in [
        ("baleine-deploy", 600),
        ("baleine-destroy", 120),
        ("baleine-save", 900),
        ("baleine-ps", 30),
        ("baleine-exec", 300),
        ("baleine-logs", 120),
        ("baleine-cp", 600),
        ("baleine-build", 1800),
    ] {
        Test::new(tool)
            .args(&["--help"])
            .status(0)
            // argh may wrap the help between "default:" and the number.
            .stdout(&format!("{seconds})"))
            .run();
    }
}

#[test]
fn deploy_needs_an_image() {
    Test::new("baleine-deploy")
        .args(&["1"])
        .status(2)
        .stderr("give the image to run with -i IMAGE")
        .stderr("(or records naming theirs on stdin)")
        .run();
}

#[test]
fn a_malformed_image_is_named_and_nothing_is_done() {
    Test::new("baleine-deploy")
        .args(&["-i", "Busy Box", "1-3"])
        .status(2)
        .stderr("Busy Box")
        .run();
}

#[test]
fn unbalanced_quotes_in_options_are_a_usage_error() {
    Test::new("baleine-deploy")
        .args(&["-i", "busybox", "--options", "-e 'A=1", "1"])
        .status(2)
        .stderr("--options")
        .run();
}

#[test]
fn zero_timeout_and_zero_parallel_are_refused() {
    Test::new("baleine-ps")
        .args(&["--timeout", "0", "1"])
        .status(2)
        .stderr("--timeout must be at least 1 second")
        .run();
    Test::new("baleine-ps")
        .args(&["-j", "0", "1"])
        .status(2)
        .stderr("--parallel must be at least 1")
        .run();
}

#[test]
fn huge_numbers_are_usage_errors_not_panics_or_hangs() {
    Test::new("baleine-ps")
        .args(&["--timeout", "18446744073709551615", "1"])
        .status(2)
        .stderr("--timeout")
        .run();
    Test::new("baleine-ps")
        .args(&["--timeout", "2592001", "1"])
        .status(2)
        .stderr("more than 2592000 seconds")
        .run();
    Test::new("baleine-ps")
        .args(&["-j", "100000000", "1"])
        .status(2)
        .stderr("--parallel 100000000 is more than 4096")
        .run();
}

#[test]
fn many_workers_for_one_node_run_it_once() {
    Test::new("baleine-ps")
        .args(&["-j", "4096", "--dry-run", "1"])
        .status(0)
        .nodes(1)
        .run();
    Test::new("baleine-destroy")
        .args(&["-y", "-j", "4096", "--dry-run"])
        .stdin("fit01\nfit02\n")
        .status(0)
        .nodes(2)
        .run();
}

#[test]
fn a_bad_node_spec_in_the_arguments_is_a_usage_error() {
    Test::new("baleine-ps")
        .args(&["1-99999999"])
        .status(2)
        .stderr("arguments:")
        .run();
    Test::new("baleine-ps")
        .args(&["fit;reboot"])
        .status(2)
        .stderr("is not a node")
        .run();
}

#[test]
fn a_command_without_dashes_is_not_taken_for_nodes() {
    Test::new("baleine-deploy")
        .args(&["-i", "busybox", "1-2", "sleep", "3600"])
        .status(2)
        .stderr("\"sleep\" is not a node")
        .stderr("did you forget `--` before the command?")
        .run();
    // An option of the command is taken for one of ours: the same hint.
    Test::new("baleine-exec")
        .args(&["1-2", "ls", "-l", "/"])
        .status(2)
        .stderr("did you forget `--` before the command?")
        .run();
    // Names with a dot and nodes of ALL_SCOPE are nodes; others outside
    // ALL_SCOPE draw a warning before any work.
    Test::new("baleine-ps")
        .config("ALL_SCOPE = 1-3")
        .args(&["--dry-run", "2", "fit40", "node.example.org"])
        .status(0)
        .nodes(3)
        .stderr("outside ALL_SCOPE (3 nodes): fit40,node.example.org")
        .run();
}

#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error_not_a_panic() {
    use std::os::unix::ffi::OsStringExt;
    Test::new("baleine-ps")
        .raw_arg(std::ffi::OsString::from_vec(b"fit\xff".to_vec()))
        .status(2)
        .stderr("not valid UTF-8")
        .run();
}

#[test]
fn a_configuration_error_names_the_file_and_line() {
    let test = Test::new("baleine-ps").config("PARALLEL = many");
    let conf = test.env.path("baleine.conf").display().to_string();
    let line = test.last_config_line();
    test.args(&["1"])
        .status(2)
        .stderr(&format!("{conf}:{line}"))
        .stderr("PARALLEL")
        .run();
}

#[test]
fn an_unknown_configuration_key_is_reported_with_its_line() {
    let test = Test::new("baleine-destroy").config("NO_SUCH_KEY = 1");
    let conf = test.env.path("baleine.conf").display().to_string();
    let line = test.last_config_line();
    test.args(&["-y", "--dry-run", "1"])
        .status(0)
        .nodes(1)
        .stderr(&format!("{conf}:{line}: unknown key \"NO_SUCH_KEY\""))
        .run();
}

#[test]
fn an_empty_stdin_is_an_empty_run_that_says_so() {
    let records = Test::new("baleine-ps")
        .status(0)
        .nodes(0)
        .stderr("baleine-ps: no node: stdin gave none (nodes come from the arguments, else stdin")
        .run();
    assert!(records.is_empty());
    // From cron or `ssh gateway cmd`, stdin is no terminal: $NODES is not
    // read, and the note says so.
    Test::new("baleine-ps")
        .env("NODES", "1-3")
        .status(0)
        .nodes(0)
        .stderr("$NODES, though set, is read only when stdin is a terminal")
        .run();
}

#[test]
fn dry_run_prints_the_ssh_command_and_script_of_every_node() {
    let records = Test::new("baleine-deploy")
        .args(&["-i", "busybox", "--dry-run", "1-3", "~2", "5"])
        .status(0)
        .nodes(3)
        .run();
    let nodes: Vec<&str> = records
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 3);
    for node in ["fit01", "fit03", "fit05"] {
        let record = records.iter().find(|r| r["node"] == node).unwrap();
        assert_eq!(record["dry_run"], true);
        let ssh: Vec<&str> = record["ssh"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        // The node comes after `--`: never an ssh option.
        let dashes = ssh.iter().position(|w| *w == "--").unwrap();
        assert_eq!(ssh[dashes + 1], node);
        // The script runs marked with the run's tag and under the node's own
        // timer (remote::protocol::session_command), as one quoted word.
        let command = ssh[dashes + 2];
        let script = record["script"].as_str().unwrap();
        assert!(command.contains("exec env BALEINE_RUN="), "{command}");
        assert!(command.ends_with(&quote_word(script)[1..]), "{command}");
        assert!(record["script"]
            .as_str()
            .unwrap()
            .contains("docker run -d --name container"));
    }
}

#[test]
fn dry_run_quotes_a_hostile_command_word_for_word() {
    let records = Test::new("baleine-exec")
        .args(&["--dry-run", "1", "--", "sh", "-c", "echo $HOME; `id` 'x'"])
        .status(0)
        .nodes(1)
        .run();
    let script = records[0]["script"].as_str().unwrap();
    assert!(
        script.contains(r#"container sh -c 'echo $HOME; `id` '\''x'\'''"#),
        "{script}"
    );
}

#[test]
fn stdin_takes_names_specs_and_records_and_reports_bad_lines_by_number() {
    let records = Test::new("baleine-destroy")
        .args(&["-y", "--dry-run"])
        .stdin("fit01\n{\"node\":\"fit02\",\"ok\":true}\n-oProxyCommand=x\n{oops\n3 1\n")
        .status(1)
        .run();
    let mut ok: Vec<&str> = records
        .iter()
        .filter(|r| r["ok"] == true)
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    ok.sort();
    assert_eq!(ok, ["fit01", "fit02", "fit03"]);
    let mut bad: Vec<u64> = records
        .iter()
        .filter(|r| r["stage"] == "input")
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    bad.sort();
    assert_eq!(bad, [3, 4]);
}

#[test]
fn a_record_s_node_field_is_one_node() {
    Test::new("baleine-ps")
        .args(&["--dry-run"])
        .stdin("{\"node\":\"fit07\"}\n")
        .status(0)
        .nodes(1)
        .stdout("\"node\":\"fit07\"")
        .run();
}

#[test]
fn nul_bytes_and_invalid_utf8_on_stdin_are_input_records() {
    let records = Test::new("baleine-ps")
        .args(&["--dry-run"])
        .stdin("fit01\nfi\0t02\n\u{FFFD}\n")
        .status(1)
        .run();
    assert_eq!(records.iter().filter(|r| r["ok"] == true).count(), 1);
    assert_eq!(records.iter().filter(|r| r["stage"] == "input").count(), 2);
}

#[test]
fn all_scope_comes_from_the_configuration() {
    Test::new("baleine-ps")
        .config("ALL_SCOPE = 1-4")
        .args(&["--dry-run", "-a", "~2"])
        .status(0)
        .nodes(3)
        .run();
}

#[test]
fn node_prefix_names_the_nodes() {
    Test::new("baleine-ps")
        .config("NODE_PREFIX = node")
        .args(&["--dry-run", "4"])
        .status(0)
        .stdout("\"node\":\"node04\"")
        .run();
}

#[test]
fn save_refuses_a_registry_host_in_the_name() {
    Test::new("baleine-save")
        .args(&["-n", "faraday.repo/x:v1", "1"])
        .status(2)
        .stderr("give the repository name only")
        .run();
}

#[test]
fn save_tags_each_node_when_several_are_saved() {
    let records = Test::new("baleine-save")
        .args(&["-n", "exp:v1", "--dry-run", "1-2"])
        .status(0)
        .nodes(2)
        .run();
    for record in records {
        let node = record["node"].as_str().unwrap();
        assert!(record["script"]
            .as_str()
            .unwrap()
            .contains(&format!("faraday.repo/exp:v1-{node}")));
    }
}

#[test]
fn exec_needs_a_command_and_a_readable_stdin_file() {
    Test::new("baleine-exec")
        .args(&["1"])
        .status(2)
        .stderr("no command")
        .run();
    Test::new("baleine-exec")
        .args(&["--stdin", "/nonexistent/input", "1", "--", "cat"])
        .status(2)
        .stderr("--stdin /nonexistent/input")
        .run();
}

#[test]
fn destroy_without_a_terminal_asks_for_yes_and_does_nothing() {
    Test::new("baleine-destroy")
        .args(&["1"])
        .without_terminal()
        .status(2)
        .stderr("pass -y")
        .run();
}

#[test]
fn the_completion_backend_offers_the_nodes_of_all_scope() {
    Test::new("baleine-deploy")
        .config("ALL_SCOPE = 1-3")
        .env("BALEINE_COMPLETE", "nodes")
        .status(0)
        .stdout("fit01\nfit02\nfit03\n")
        .run();
}

#[test]
fn an_unreachable_registry_is_named_and_list_exits_1() {
    let port = free_port();
    Test::new("baleine-list")
        .config(&format!("REGISTRY_URL = 127.0.0.1:{port}"))
        .status(1)
        .stderr(&format!("http://127.0.0.1:{port}/v2/_catalog"))
        .run();
}

#[test]
fn rdsh_refuses_arguments_other_than_dash_c() {
    Test::new("rdsh")
        .args(&["-x", "ls"])
        // rdsh's own failure: 125, as docker's (the command could exit 2).
        .status(125)
        .stderr("rdsh:")
        .run();
}

/// A loopback port nothing listens on.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A registry of the test's own on loopback that lists nothing to whoever
/// sends `Basic expected`, and answers 401 to anyone else.
fn registry_requiring(expected: &'static str) -> u16 {
    let registry = Loopback::serve(move |request| {
        if request.authorization.as_deref() == Some(&format!("Basic {expected}")) {
            json(r#"{"repositories":[]}"#)
        } else {
            (401, vec![], vec![])
        }
    });
    registry.port
}

#[test]
fn docker_login_credentials_are_found_through_docker_config() {
    // "user:pass"
    let port = registry_requiring("dXNlcjpwYXNz");
    let test = Test::new("baleine-list").config(&format!("REGISTRY_URL = 127.0.0.1:{port}"));
    let dir = test.env.path("docker-config");
    test.env.write(
        "docker-config/config.json",
        &format!(r#"{{"auths":{{"127.0.0.1:{port}":{{"auth":"dXNlcjpwYXNz"}}}}}}"#),
    );
    test.env("DOCKER_CONFIG", dir.to_str().unwrap())
        .status(0)
        .run();
}

#[test]
fn docker_credential_helpers_are_asked() {
    for store in ["credHelpers", "credsStore"] {
        credentials_from_a_helper(store);
    }
}

/// A registry that wants what the `docker-credential-baleinetest` helper
/// says, named in Docker's config.json as a per-registry helper
/// (`credHelpers`) or as the store for every registry (`credsStore`).
fn credentials_from_a_helper(how: &str) {
    // "helper:secret"
    let port = registry_requiring("aGVscGVyOnNlY3JldA==");
    let test = Test::new("baleine-list").config(&format!("REGISTRY_URL = 127.0.0.1:{port}"));
    test.env.write_script(
        "bin/docker-credential-baleinetest",
        "#!/bin/sh\ncat >/dev/null\necho '{\"Username\":\"helper\",\"Secret\":\"secret\"}'\n",
    );
    let config = match how {
        "credsStore" => r#"{"credsStore":"baleinetest"}"#.to_owned(),
        _ => format!(r#"{{"credHelpers":{{"127.0.0.1:{port}":"baleinetest"}}}}"#),
    };
    test.env.write("docker-config/config.json", &config);
    let path = format!(
        "{}:{}",
        test.env.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = test.env.path("docker-config");
    test.env("DOCKER_CONFIG", dir.to_str().unwrap())
        .env("PATH", &path)
        .status(0)
        .run();
}

#[test]
fn without_credentials_a_protected_registry_says_what_is_needed() {
    let port = registry_requiring("dXNlcjpwYXNz");
    Test::new("baleine-list")
        .config(&format!("REGISTRY_URL = 127.0.0.1:{port}"))
        .status(1)
        .stderr("needs credentials")
        .run();
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    // The tool waits on its stdin meanwhile: its limits can be read.
    let env = common::harness::TestEnv::new();
    let conf = env.write("baleine.conf", &env.base_config());
    let mut prlimit = std::process::Command::new("prlimit");
    common::scrub_environment(&mut prlimit);
    let mut child = prlimit
        .args(["--nofile=64:4096", "--"])
        .arg(common::binary("baleine-ps"))
        .env("BALEINE_CONFIG", &conf)
        .env("HOME", env.path("home"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("prlimit runs");
    let limits = format!("/proc/{}/limits", child.id());
    let soft = || {
        std::fs::read_to_string(&limits)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3).map(String::from))
    };
    common::wait_until("the tool's soft limit at 4096", 30, || {
        soft().as_deref() == Some("4096")
    });
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// Answering no is a choice, not a failed node: exit 2, nothing done.
#[test]
fn answering_no_at_the_prompt_removes_nothing_and_is_not_a_failure() {
    // rmi looks the tag up before it asks: a registry of the test's own
    // serves it (and would see any DELETE).
    let digest = format!("sha256:{}", "a".repeat(64));
    let registry = Loopback::serve(move |request| match request.target.as_str() {
        target if target.starts_with("/v2/exp/tags/list") => {
            json(r#"{"name":"exp","tags":["v1"]}"#)
        }
        target if target.starts_with("/v2/exp/manifests/") => (
            200,
            vec![
                ("Docker-Content-Digest".into(), digest.clone()),
                (
                    "Content-Type".into(),
                    "application/vnd.docker.distribution.manifest.v2+json".into(),
                ),
            ],
            b"{}".to_vec(),
        ),
        _ => (404, vec![], b"{}".to_vec()),
    });
    for (tool, args) in [("baleine-destroy", "1-2"), ("baleine-rmi", "exp:v1")] {
        let (screen, status, _) = common::harness::on_a_terminal(
            tool,
            args,
            &format!(
                "REGISTRY_ADMIN_URL = 127.0.0.1:{0}\nREGISTRY_URL = 127.0.0.1:{0}\n",
                registry.port
            ),
            "n\n",
        );
        assert!(screen.contains("[y/N]"), "{tool}: {screen}");
        assert!(screen.contains("cancelled, nothing"), "{tool}: {screen}");
        assert_eq!(status, Some(2), "{tool}: {screen}");
    }
    assert!(
        !registry.requests().iter().any(|r| r.method == "DELETE"),
        "{:?}",
        registry.requests()
    );
}

/// `count` records on the terminal, each starting a line of its own: after
/// a newline, or after the clear of the progress line.
fn each_record_on_a_line_of_its_own(screen: &str, count: usize) {
    for (at, _) in screen.match_indices("{\"node\"") {
        let before = &screen[..at];
        assert!(
            before.is_empty() || before.ends_with('\n') || before.ends_with("\x1b[K"),
            "a record glued to other text: {:?}",
            &screen[at.saturating_sub(40)..at + 10]
        );
    }
    assert_eq!(screen.matches("{\"node\"").count(), count, "{screen}");
}

#[test]
fn on_a_terminal_the_progress_line_is_cleared_before_every_record() {
    // --json: the JSON lines go to the terminal.
    let (screen, status, _) =
        common::harness::on_a_terminal("baleine-destroy", "-y --json --dry-run 1-5", "", "");
    assert_eq!(status, Some(0), "{screen}");
    each_record_on_a_line_of_its_own(&screen, 5);
    assert!(screen.contains("destroy: 5 nodes, 5 ok"), "{screen}");
}

/// `| jq` (here `| cat`) writes the records to the terminal after we wrote
/// them: the progress line must never stand where their lines go.
#[test]
fn a_reader_writing_to_the_terminal_never_gets_its_lines_glued_to_the_progress() {
    // (The exit status is cat's: sh has no pipefail.)
    let (screen, _, _) =
        common::harness::on_a_terminal("baleine-destroy", "-y --dry-run 1-30 | cat", "", "");
    each_record_on_a_line_of_its_own(&screen, 30);
}

#[test]
fn on_a_terminal_failures_are_grouped_and_the_records_kept_in_a_state_file() {
    // Nodes no resolver knows: ssh fails at once, naming each node.
    let (screen, status, env) =
        common::harness::on_a_terminal("baleine-ps", "--timeout 20 1-3", "", "");
    assert_eq!(status, Some(1), "{screen}");
    assert!(
        screen.contains("3 connect: ssh: Could not resolve hostname <node>"),
        "{screen}"
    );
    assert!(screen.contains(": fit[01-03]"), "{screen}");
    let dir = env.path("home/.local/state/baleine");
    let latest =
        std::fs::read_to_string(dir.join("latest-ps.jsonl")).expect("the latest run's records");
    assert_eq!(latest.lines().count(), 3);
    assert!(screen.contains("every record is in"), "{screen}");
    assert!(screen.contains("select(.ok | not)"), "{screen}");
}

#[test]
fn each_tool_keeps_its_own_last_fifty_runs_and_an_empty_run_moves_nothing() {
    let env = common::harness::TestEnv::new();
    let state = env.path("state");
    let state_home = state.to_str().unwrap();
    let deployed = Test::new("baleine-deploy")
        .env("XDG_STATE_HOME", state_home)
        .args(&["--dry-run", "-i", "busybox", "1-2"])
        .status(0)
        .nodes(2)
        .run();
    // A read-only tool run many times never pushes out a deploy.
    for _ in 0..60 {
        Test::new("baleine-ps")
            .env("XDG_STATE_HOME", state_home)
            .args(&["--dry-run", "1"])
            .status(0)
            .run();
    }
    // A run given no node (a pipeline that filtered to nothing) leaves the
    // last deploy's history and its retry recipe as they were.
    Test::new("baleine-deploy")
        .env("XDG_STATE_HOME", state_home)
        .args(&["-i", "busybox"])
        .stdin("")
        .status(0)
        .nodes(0)
        .run();
    let files: Vec<String> = std::fs::read_dir(state.join("baleine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".jsonl") && !name.starts_with("latest-"))
        .collect();
    let of = |tool: &str| {
        files
            .iter()
            .filter(|f| f.contains(&format!("-{tool}--")))
            .count()
    };
    assert_eq!(
        (of("ps"), of("deploy"), files.len()),
        (50, 1, 51),
        "{files:?}"
    );
    // Named by what the run was about (its nodes; its images when its
    // records name them, which a dry run's do not).
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("-deploy--fit[01-02].jsonl")),
        "{files:?}"
    );
    let latest = |tool: &str| {
        std::fs::read_to_string(state.join(format!("baleine/latest-{tool}.jsonl")))
            .expect("the latest run's file is kept")
    };
    assert_eq!(latest("ps").lines().count(), 1);
    let kept: Vec<serde_json::Value> = latest("deploy")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept, deployed);
}

#[test]
fn ctrl_c_says_what_it_does_and_every_node_still_gets_a_record() {
    // An "ssh" that hangs: the nodes are at work when Ctrl-C comes.
    let env = common::harness::TestEnv::new();
    let conf = env.write(
        "baleine.conf",
        &format!("{}SSH = \"sh -c 'exec sleep 30' --\"\n", env.base_config()),
    );
    let screen_file = env.path("screen");
    let mut script = std::process::Command::new("script");
    common::scrub_environment(&mut script);
    let mut child = script
        // `exec`: the tool is script's child whatever its shell (dash, CI's
        // /bin/sh when SHELL is unset, would otherwise keep itself between).
        .args([
            "-qefc",
            &format!("exec {} 1-2", common::binary("baleine-ps")),
        ])
        .arg(&screen_file)
        .env("BALEINE_CONFIG", &conf)
        .env("HOME", env.path("home"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script runs");
    let tool = || -> Option<String> {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &child.id().to_string(), "baleine-ps"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(String::from)
    };
    common::wait_until("the tool at work on its nodes", 30, || {
        tool().is_some() && common::processes("^sleep 30$").len() >= 2
    });
    let pid = tool().unwrap();
    let interrupt = || {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status();
    };
    interrupt();
    common::wait_until("the interrupt announced", 30, || {
        std::fs::read_to_string(&screen_file)
            .unwrap_or_default()
            .contains("ps: interrupting: stopping 2 nodes (Ctrl-C again to abandon them)")
    });
    // Stopping the work on these nodes hangs as well: a second Ctrl-C
    // abandons it, and still every node gets its record.
    interrupt();
    let status = child.wait().unwrap();
    let screen = std::fs::read_to_string(&screen_file).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "{screen}");
    // On a terminal ps shows a table: the records are in the run's state file.
    let records = std::fs::read_to_string(env.path("home/.local/state/baleine/latest-ps.jsonl"))
        .expect("the run's records");
    assert_eq!(
        records.matches("\"stage\":\"interrupted\"").count(),
        2,
        "{records}"
    );
    assert_eq!(
        records.matches("abandoned (second Ctrl-C)").count(),
        2,
        "{records}"
    );
    assert!(
        screen.contains("2 interrupted: interrupted during connect: fit[01-02]"),
        "{screen}"
    );
    drop(child.stdin.take());
}

#[test]
fn ml_kem_key_exchange_is_preferred_where_ssh_has_it_and_the_user_chose_none() {
    use std::os::unix::fs::PermissionsExt;
    let env = common::harness::TestEnv::new();
    let fake = |name: &str, kex: &str| {
        let path = env.write(
            name,
            &format!("#!/bin/sh\n[ \"$1\" = -Q ] && printf '{kex}\\n'\nexit 0\n"),
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    };
    let new = fake(
        "ssh-10",
        "curve25519-sha256\\nmlkem768x25519-sha256\\nsntrup761x25519-sha512",
    );
    let old = fake("ssh-9.2", "curve25519-sha256\\nsntrup761x25519-sha512");
    let argv = |ssh: &str| -> String {
        let records = Test::new("baleine-ps")
            .config(&format!("SSH = \"{ssh}\""))
            .args(&["--dry-run", "1"])
            .status(0)
            .run();
        records[0]["ssh"].to_string()
    };
    assert!(argv(&new).contains("KexAlgorithms=^mlkem768x25519-sha256"));
    assert!(!argv(&old).contains("KexAlgorithms"));
    // The user's own choice stands.
    let chosen = argv(&format!("{new} -o KexAlgorithms=curve25519-sha256"));
    assert!(!chosen.contains("mlkem"), "{chosen}");
    let config = env.write(
        "ssh_config",
        "Host *\n  KexAlgorithms sntrup761x25519-sha512\n",
    );
    let chosen = argv(&format!("{new} -F {}", config.display()));
    assert!(!chosen.contains("mlkem"), "{chosen}");
}

#[test]
fn each_node_gets_its_own_values_in_the_command_and_options() {
    let records = Test::new("baleine-exec")
        .args(&[
            "--dry-run",
            "1-2",
            "--",
            "echo",
            "{node}:{index}",
            "{{x}}",
            "{a,b}",
        ])
        .status(0)
        .nodes(2)
        .run();
    for record in &records {
        let node = record["node"].as_str().unwrap();
        let index = node.trim_start_matches("fit").trim_start_matches('0');
        assert!(
            record["script"]
                .as_str()
                .unwrap()
                .contains(&format!("container echo {node}:{index} '{{x}}' '{{a,b}}'")),
            "{record}"
        );
    }
    let records = Test::new("baleine-deploy")
        .args(&[
            "-i",
            "busybox",
            "--options",
            "-e ID={index} --hostname=exp-{node}",
            "--dry-run",
            "3",
            "--",
            "sleep",
            "{index}0",
        ])
        .status(0)
        .nodes(1)
        .run();
    let script = records[0]["script"].as_str().unwrap();
    assert!(
        script.contains("-e 'ID=3' '--hostname=exp-fit03' --label"),
        "{script}"
    );
    assert!(script.contains(" busybox sleep 30)"), "{script}");
}

#[test]
fn ready_cmd_goes_with_wait() {
    Test::new("baleine-deploy")
        .args(&["-i", "busybox", "--ready-cmd", "true", "1"])
        .status(2)
        .stderr("--ready-cmd goes with --wait")
        .run();
    let records = Test::new("baleine-deploy")
        .args(&[
            "-i",
            "busybox",
            "--wait",
            "1m",
            "--dry-run",
            "1",
            "--",
            "sleep",
            "9",
        ])
        .status(0)
        .nodes(1)
        .run();
    assert!(records[0]["script"].as_str().unwrap().contains("m ready"));
}

#[test]
fn baleine_lists_its_tools_and_runs_them() {
    Test::new("baleine")
        .args(&["--help"])
        .status(0)
        .stdout("  deploy    run an image as the managed container")
        .stdout("  build     build an image and push its tags")
        .run();
    Test::new("baleine")
        .args(&["--version"])
        .status(0)
        .stdout("baleine 0.")
        .run();
    Test::new("baleine")
        .args(&["help", "exec"])
        .status(0)
        .stdout("Usage: baleine-exec")
        .run();
    Test::new("baleine")
        .args(&["nosuch", "1-3"])
        .status(2)
        .stderr("no tool \"nosuch\" (baleine-nosuch is neither beside baleine nor on PATH)")
        .run();
    Test::new("baleine").status(2).stderr("Tools:").run();
}

/// A node that never answers: the records show what the tool was given.
const NO_NODE: &str = "SSH = \"sh -c 'echo no route >&2; exit 255' --\"";

#[test]
fn baleine_reads_0_8_lines_and_says_the_new_form_once() {
    let records = Test::new("baleine")
        .config(NO_NODE)
        .args(&[
            "deploy", "-i", "busybox", "--options", "-e", "A=1", "--nodes", "1-2", "~2", "4",
            "--command", "echo", "{a,b}",
        ])
        .status(1)
        .nodes(2)
        .stderr("a baleine 0.8 command line; today it reads: baleine-deploy -i busybox --options '-e A=1' 1-2 '~2' 4 -- echo '{a,b}'")
        .run();
    // (Each node's session starts at once: records come as they end.)
    let mut nodes: Vec<&str> = records
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["fit01", "fit04"]);
    // Today's form passes through as it is, without a word.
    let out = Test::new("baleine")
        .config(NO_NODE)
        .args(&[
            "deploy",
            "-i",
            "busybox",
            "--options",
            "-e A=1",
            "1",
            "--",
            "true",
        ])
        .status(1)
        .nodes(1)
        .run();
    assert_eq!(out[0]["stage"], "connect");
    Test::new("baleine")
        .config(NO_NODE)
        .args(&["destroy", "--force", "--nodes", "3"])
        .status(1)
        .nodes(1)
        .stderr("today it reads: baleine-destroy -y 3")
        .run();
}

#[test]
fn build_refuses_a_missing_dockerfile_or_tag_before_anything() {
    let env = common::harness::TestEnv::new();
    let dir = env.path("empty");
    std::fs::create_dir_all(&dir).unwrap();
    Test::new("baleine-build")
        .args(&["-t", "x:v1", dir.to_str().unwrap()])
        .status(2)
        .stderr("no Dockerfile at")
        .stderr("(give one with -f)")
        .run();
    Test::new("baleine-build")
        .args(&["-t", "x:v1", "/nonexistent/context"])
        .status(2)
        .stderr("is not a directory (nor a URL)")
        .run();
    let context = env.write("ctx/Dockerfile", "FROM busybox\n");
    let context = context.parent().unwrap().to_str().unwrap();
    Test::new("baleine-build")
        .args(&[context])
        .status(2)
        .stderr("give at least one -t NAME:TAG")
        .run();
    Test::new("baleine-build")
        .args(&["-t", "faraday.repo/x:v1", context])
        .status(2)
        .stderr("give the repository name only")
        .run();
    let records = Test::new("baleine-build")
        .config("SAVE_PORT = 5000\nSAVE_NAMESPACE = team")
        .args(&["-t", "x:v1", "-t", "x:latest", "--dry-run", context])
        .status(0)
        .run();
    assert_eq!(records[0]["node"], serde_json::Value::Null);
    assert_eq!(records[0]["built_on"], "gateway");
    assert_eq!(records[0]["images"][1], "faraday.repo:5000/team/x:latest");
    let script = records[0]["script"].as_str().unwrap();
    assert!(script.contains("build --force-rm -f"), "{script}");
    assert!(
        script.contains("push faraday.repo:5000/team/x:v1"),
        "{script}"
    );
}

#[test]
fn logs_cp_and_rmi_refuse_bad_arguments_before_anything() {
    for (tool, args, says) in [
        (
            "baleine-logs",
            &["1", "--since", "$(reboot)"][..],
            "--since \"$(reboot)\"",
        ),
        (
            "baleine-logs",
            &["1", "--follow", "--output-dir", "/tmp/x"][..],
            "--follow writes records",
        ),
        ("baleine-cp", &["1"][..], "give either --to"),
        (
            "baleine-cp",
            &["1", "--to", "root/in", "--", "x"][..],
            "an absolute path in the container",
        ),
        (
            "baleine-cp",
            &["1", "--to", "/root/../etc", "--", "x"][..],
            "without `..`",
        ),
        (
            "baleine-cp",
            &["1", "--to", "/root/in"][..],
            "copies the files given after --",
        ),
        (
            "baleine-cp",
            &["1", "--to", "/root/in", "--", "/nonexistent/file"][..],
            "/nonexistent/file:",
        ),
        (
            "baleine-cp",
            &["1", "--from", "/root/out"][..],
            "needs --output-dir",
        ),
        ("baleine-rmi", &["-y", "exp"][..], "give the tag to delete"),
        (
            "baleine-rmi",
            &["-y", "other.host/exp:v1"][..],
            "give the repository name only",
        ),
    ] {
        Test::new(tool).args(args).status(2).stderr(says).run();
    }
    Test::new("baleine-rmi")
        .args(&["-y"])
        .stdin("exp:v1\n{\"tag\":\"v2\"}\n")
        .status(2)
        .stderr("stdin line 2: a JSON record without repository and tag")
        .run();
}

#[test]
fn rmi_dry_run_says_what_it_would_delete_and_deletes_nothing() {
    // A registry of the test's own that holds exp:v1 and exp:v2 on one image.
    let digest = format!("sha256:{}", "a".repeat(64));
    let answer_digest = digest.clone();
    let server = Loopback::serve(move |request| {
        if request.target.contains("/tags/list") {
            return json(r#"{"name":"exp","tags":["v1","v2"]}"#);
        }
        (
            200,
            vec![("Docker-Content-Digest".into(), answer_digest.clone())],
            Vec::new(),
        )
    });
    let records = Test::new("baleine-rmi")
        .config(&format!("REGISTRY_ADMIN_URL = 127.0.0.1:{}", server.port))
        .args(&["--dry-run", "exp:v1", "exp:v2"])
        .status(0)
        .run();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["dry_run"], true);
    assert_eq!(records[0]["digest"], digest.as_str());
    assert_eq!(records[0]["along"][0], "exp:v2");
    assert!(server.requests().iter().all(|r| !r.target.is_empty()));
}

#[test]
fn rmi_takes_a_bare_name_under_save_namespace_as_save_does() {
    let digest = format!("sha256:{}", "b".repeat(64));
    let answer_digest = digest.clone();
    let server = Loopback::serve(move |request| {
        if request.target.contains("/tags/list") {
            return json(r#"{"name":"team/exp","tags":["v1"]}"#);
        }
        (
            200,
            vec![("Docker-Content-Digest".into(), answer_digest.clone())],
            Vec::new(),
        )
    });
    let records = Test::new("baleine-rmi")
        .config(&format!(
            "REGISTRY_ADMIN_URL = 127.0.0.1:{}\nSAVE_NAMESPACE = team",
            server.port
        ))
        .args(&["--dry-run", "exp:v1", "team/exp:v1"])
        .status(0)
        .run();
    // Both name the same tag: one record.
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["repository"], "team/exp");
    assert!(server
        .requests()
        .iter()
        .all(|r| r.target.starts_with("/v2/team/exp/")));
}

// Local nodes (TestEnv::local_nodes): ssh runs the remote script here and
// docker is the bench's stand-in, so the success paths of the fleet tools
// run hermetically, without root, sshd or dockerd.

#[test]
fn on_local_nodes_a_deploy_pins_every_node_to_the_first_node_s_digest() {
    let records = Test::new("baleine-deploy")
        .local_nodes()
        .args(&["-i", "busybox", "1-4"])
        .status(0)
        .nodes(4)
        .run();
    let digest = "sha256:9754831ee7d6a328f03096edcc79ebaeb65fcfda242f6de2caf8daa71cbc96c6";
    for record in &records {
        assert_eq!(record["ok"], true, "{record}");
        assert_eq!(record["image"], "busybox", "{record}");
        assert_eq!(record["digest"], digest, "{record}");
    }
    let pinned = records.iter().filter(|r| r["pinned"] == true).count();
    assert_eq!(pinned, 3, "the first node resolves, the others are pinned");
}

#[test]
fn on_local_nodes_destroy_removes_the_managed_container() {
    let records = Test::new("baleine-destroy")
        .local_nodes()
        .args(&["-y", "fit01", "fit02"])
        .status(0)
        .nodes(2)
        .run();
    for record in &records {
        assert_eq!(
            (&record["removed"], &record["container"]),
            (&serde_json::json!(true), &serde_json::json!("container")),
            "{record}"
        );
    }
}

#[test]
fn on_local_nodes_ps_reports_the_running_container_and_its_digest() {
    let records = Test::new("baleine-ps")
        .local_nodes()
        .args(&["1-3"])
        .status(0)
        .nodes(3)
        .run();
    for record in &records {
        assert_eq!(record["state"], "running", "{record}");
        assert_eq!(record["image"], "busybox", "{record}");
        assert!(
            record["digest"].as_str().unwrap().starts_with("sha256:"),
            "{record}"
        );
    }
}

#[test]
fn on_local_nodes_exec_keeps_each_command_s_output_and_exit_status() {
    let records = Test::new("baleine-exec")
        .local_nodes()
        .args(&["1-2", "--", "sh", "-c", "echo out $0; echo err >&2", "it's"])
        .status(0)
        .nodes(2)
        .run();
    for record in &records {
        assert_eq!(record["stdout"], "out it's\n", "{record}");
        assert_eq!(record["stderr"], "err\n", "{record}");
        assert_eq!(record["exit_code"], 0, "{record}");
    }
    Test::new("baleine-exec")
        .local_nodes()
        .args(&["1", "--", "sh", "-c", "exit 3"])
        .status(1)
        .nodes(1)
        .stdout(r#""exit_code":3"#)
        .run();
}

// One pipeline: build, rmi and list write through the same writer as the
// fleet tools, so their runs are kept in state files and their exit status
// follows the same rule. The build runs with a gateway docker of the
// test's own (GATEWAY_DOCKER), through the same session machinery as a node.

const PUSHED: &str = "sha256:5555555555555555555555555555555555555555555555555555555555555555";

/// A registry serving `exp:v1` (as PUSHED), a repository `broken` that
/// cannot be listed, and deletes.
fn registry_of_the_test() -> Loopback {
    Loopback::serve(|request| match request.target.as_str() {
        "/v2/_catalog?n=100" | "/v2/_catalog" => json(r#"{"repositories":["broken","exp"]}"#),
        target if target.starts_with("/v2/exp/tags/list") => {
            json(r#"{"name":"exp","tags":["v1"]}"#)
        }
        target if target.starts_with("/v2/exp/manifests/") => (
            if request.method == "DELETE" { 202 } else { 200 },
            vec![
                ("Docker-Content-Digest".into(), PUSHED.into()),
                (
                    "Content-Type".into(),
                    "application/vnd.docker.distribution.manifest.v2+json".into(),
                ),
            ],
            b"{}".to_vec(),
        ),
        target if target.starts_with("/v2/broken/") => (500, vec![], b"{}".to_vec()),
        _ => (404, vec![], b"{}".to_vec()),
    })
}

/// A gateway docker that builds by running `$BUILD` (a shell line) and
/// pushes by printing PUSHED as docker does.
fn gateway_docker(test: &Test, build: &str) -> String {
    let docker = test.env.write_script(
        "docker",
        &format!(
            "#!/bin/sh\ncase $1 in\n  buildx) exit 1 ;;\n  build) echo 'Step 1/1 : FROM busybox'; {build} ;;\n  \
             push) echo \"${{2##*:}}: digest: {PUSHED} size: 528\" ;;\nesac\n"
        ),
    );
    format!("GATEWAY_DOCKER = {}", docker.display())
}

/// The records of the tool's last run, as its state file under
/// XDG_STATE_HOME `state` keeps them.
fn latest(state: &std::path::Path, action: &str) -> Vec<serde_json::Value> {
    let file = state.join(format!("baleine/latest-{action}.jsonl"));
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn build_list_and_rmi_keep_their_runs_in_state_files_like_every_tool() {
    let registry = registry_of_the_test();
    let url = format!(
        "REGISTRY_URL = 127.0.0.1:{0}\nREGISTRY_ADMIN_URL = 127.0.0.1:{0}\nSAVE_URL = 127.0.0.1:{0}",
        registry.port
    );
    let env = common::harness::TestEnv::new();
    let state = env.path("state");
    let state_home = state.to_str().unwrap();
    let test = Test::new("baleine-build").env("XDG_STATE_HOME", state_home);
    let docker = gateway_docker(&test, "echo built");
    let context = env.write("ctx/Dockerfile", "FROM busybox\n");
    let context = context.parent().unwrap().to_str().unwrap();
    let records = test
        .config(&url)
        .config(&docker)
        .args(&["-t", "exp:v1", "--force", context])
        .status(0)
        .run();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["ok"], true, "{}", records[0]);
    assert_eq!(records[0]["node"], serde_json::Value::Null);
    assert_eq!(records[0]["built_on"], "gateway");
    assert_eq!(records[0]["digest"], PUSHED);
    assert_eq!(latest(&state, "build"), records);

    let out = Test::new("baleine-list")
        .env("XDG_STATE_HOME", state_home)
        .config(&url)
        .status(1)
        .stderr("broken")
        .stdout(r#"{"repository":"exp","tag":"v1","#)
        .run();
    assert!(out.is_empty(), "list's lines are no fleet records");
    let kept = latest(&state, "list");
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[0]["repository"], "broken");
    assert_eq!(
        (&kept[0]["ok"], &kept[0]["stage"]),
        (&false.into(), &"inspect".into())
    );
    assert_eq!(
        (&kept[1]["repository"], &kept[1]["tag"]),
        (&"exp".into(), &"v1".into())
    );

    let records = Test::new("baleine-rmi")
        .env("XDG_STATE_HOME", state_home)
        .config(&url)
        .args(&["-y", "exp:v1"])
        .status(0)
        .run();
    assert_eq!(records[0]["deleted"], true, "{}", records[0]);
    assert_eq!(latest(&state, "rmi"), records);
}

#[test]
fn a_failed_build_step_is_named_and_its_log_tail_kept() {
    let test = Test::new("baleine-build");
    let docker = gateway_docker(
        &test,
        "echo 'Step 2/2 : RUN false'; echo \"The command '/bin/sh -c false' returned a non-zero code: 1\"; exit 1",
    );
    let context = test
        .env
        .write("ctx/Dockerfile", "FROM busybox\nRUN false\n");
    let context = context.parent().unwrap().to_str().unwrap().to_owned();
    let records = test
        .config(&docker)
        .config("REGISTRY_URL = 127.0.0.1:9")
        .args(&["-t", "exp:v1", &context])
        .status(1)
        .run();
    assert_eq!(records[0]["stage"], "build", "{}", records[0]);
    assert_eq!(
        records[0]["error"],
        "Step 2/2 : RUN false: The command '/bin/sh -c false' returned a non-zero code: 1"
    );
    assert_eq!(records[0]["log_tail"][0], "Step 1/1 : FROM busybox");
}

#[test]
fn a_build_past_its_timeout_is_stopped_on_the_gateway_too() {
    // A step that runs until stopped, recognisable by its seconds.
    let seconds = 300_000 + std::process::id() % 100_000;
    let test = Test::new("baleine-build");
    let docker = gateway_docker(&test, &format!("sleep {seconds}"));
    let context = test.env.write("ctx/Dockerfile", "FROM busybox\n");
    let context = context.parent().unwrap().to_str().unwrap().to_owned();
    let records = test
        .config(&docker)
        .config("REGISTRY_URL = 127.0.0.1:9")
        .args(&["-t", "exp:v1", "--timeout", "1", &context])
        .status(1)
        .run();
    assert_eq!(records[0]["stage"], "timeout", "{}", records[0]);
    assert_eq!(records[0]["during"], "build", "{}", records[0]);
    let running = format!("^sleep {seconds}$");
    common::wait_until("the build's step stopped", 30, || {
        common::processes(&running).is_empty()
    });
}

#[test]
fn a_wait_as_long_as_the_timeout_is_refused_on_the_command_line_and_in_a_record() {
    Test::new("baleine-deploy")
        .args(&["-i", "busybox", "--wait", "30", "--timeout", "30", "1"])
        .status(2)
        .stderr("--wait 30 s is not less than the --timeout of 30 s")
        .run();
    Test::new("baleine-deploy")
        .local_nodes()
        .args(&["--timeout", "20"])
        .stdin("{\"node\":\"fit01\",\"image\":\"busybox\",\"wait\":\"1m\"}\n")
        .status(2)
        .stdout("stdin line 1: field wait 60 s is not less than the --timeout of 20 s")
        .nodes(1)
        .run();
}

/// SIGTERM and SIGHUP end a run as Ctrl-C does (every node still gets its
/// record), with the status shells give a command such a signal ended:
/// 143 and 129.
#[test]
fn sigterm_and_sighup_exit_143_and_129_and_every_node_gets_its_record() {
    for (signal, seconds, status) in [
        (nix::sys::signal::Signal::SIGTERM, 31, 143),
        (nix::sys::signal::Signal::SIGHUP, 32, 129),
    ] {
        let env = common::harness::TestEnv::new();
        // An "ssh" whose sessions hang until stopped; the cleanup session
        // (the run's kill loop) ends at once.
        let ssh = env.write_script(
            "ssh",
            &format!(
                "#!/bin/sh\n[ \"$1\" = -Q ] && exit 0\nfor last; do :; done\ncase $last in n=0*) exit 0 ;; esac\nexec sleep {seconds}\n"
            ),
        );
        let conf = env.write(
            "baleine.conf",
            &format!("{}SSH = {}\n", env.base_config(), ssh.display()),
        );
        let mut command = std::process::Command::new(common::binary("baleine-ps"));
        common::scrub_environment(&mut command);
        let child = command
            .args(["1-2"])
            .env("BALEINE_CONFIG", &conf)
            .env("HOME", env.path("home"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pattern = format!("^sleep {seconds}$");
        common::wait_until("both nodes at work", 30, || {
            common::processes(&pattern).len() >= 2
        });
        common::signal(&child, signal);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(status), "{signal}");
        let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2, "{records:?}");
        assert!(
            records.iter().all(|r| r["stage"] == "interrupted"),
            "{records:?}"
        );
    }
}

/// The XDG spec: an empty or relative XDG_* is to be ignored. Kept
/// connections then live in /tmp/baleine-ssh-UID, never ./baleine-ssh, and
/// the records under ~/.local/state, never ./baleine.
#[test]
fn empty_or_relative_xdg_directories_are_ignored() {
    for value in ["", "relative"] {
        let env = common::harness::TestEnv::new();
        let work = env.path("work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = env.write(
            "baleine.conf",
            "SSH_CONTROL_PERSIST = 60\nSSH = /bin/false\n",
        );
        let mut command = std::process::Command::new(common::binary("baleine-ps"));
        common::scrub_environment(&mut command);
        let out = command
            .args(["1"])
            .current_dir(&work)
            .env("BALEINE_CONFIG", &conf)
            .env("HOME", env.path("home"))
            .env("XDG_RUNTIME_DIR", value)
            .env("XDG_STATE_HOME", value)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
        assert!(
            left.is_empty(),
            "XDG {value:?}: files in the working directory: {left:?}"
        );
        assert!(env
            .path("home/.local/state/baleine/latest-ps.jsonl")
            .exists());
    }
}

#[test]
fn node_sets_as_summaries_print_them_are_node_specs() {
    let records = Test::new("baleine-ps")
        .args(&["--dry-run", "fit[01-03,07],fit[100-101]"])
        .status(0)
        .nodes(6)
        .run();
    let mut nodes: Vec<&str> = records
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        ["fit01", "fit02", "fit03", "fit07", "fit100", "fit101"]
    );
}

#[test]
fn typos_get_did_you_mean_and_the_dashes_hint_only_where_a_command_follows() {
    Test::new("baleine-deploy")
        .args(&["-i", "busybox", "--wiat", "10", "1", "--", "sleep", "9"])
        .status(2)
        .stderr("did you mean --wait?")
        .run();
    Test::new("baleine-ps")
        .args(&["--timout", "5", "1"])
        .status(2)
        .stderr("did you mean --timeout?")
        .stderr_lacks("forget")
        .run();
    // With `--` there, an unknown option is no missing `--`.
    Test::new("baleine-deploy")
        .args(&["-i", "busybox", "--node", "21", "--", "sleep", "9"])
        .status(2)
        .stderr("Unrecognized argument: --node")
        .stderr_lacks("forget")
        .run();
    // destroy takes no command: a stray word is no missing `--`.
    Test::new("baleine-destroy")
        .args(&["-y", "1", "sleep"])
        .status(2)
        .stderr("\"sleep\" is not a node (3, fit03, 1-5, fit[01-05,07], ~7, a name with a dot, or a node of ALL_SCOPE)\n")
        .stderr_lacks("forget")
        .run();
    Test::new("baleine-deploy")
        .args(&["-i", "busybox", "1", "sleep"])
        .status(2)
        .stderr("did you forget `--` before the command?")
        .run();
    Test::new("baleine")
        .args(&["deplyo", "1"])
        .status(2)
        .stderr("did you mean deploy?")
        .run();
}

#[test]
fn every_duration_option_reads_compound_durations() {
    Test::new("baleine-deploy")
        .args(&[
            "-i",
            "busybox",
            "--timeout",
            "1h30m",
            "--wait",
            "2m30s",
            "--dry-run",
            "1",
        ])
        .status(0)
        .nodes(1)
        .run();
    Test::new("baleine-ps")
        .args(&["--timeout", "30m1h", "1"])
        .status(2)
        .stderr("a number of seconds, or with s, m or h (90s, 5m, 1h30m)")
        .run();
}

#[test]
fn version_and_help_are_options_never_an_option_s_value() {
    for tool in ALL_TOOLS.iter().filter(|t| **t != "rdsh") {
        Test::new(tool)
            .args(&["-V"])
            .status(0)
            .stdout(&format!("{tool} {}", env!("CARGO_PKG_VERSION")))
            .run();
    }
    // An option's value is a value, even `--version` or `-h`.
    Test::new("baleine-deploy")
        .args(&[
            "-i",
            "busybox",
            "--wait",
            "10",
            "--ready-cmd",
            "--version",
            "--dry-run",
            "1",
        ])
        .status(0)
        .stdout(r#""action":"deploy","ok":true,"dry_run":true"#)
        .stdout("sh -c --version")
        .run();
    Test::new("baleine-ps")
        .args(&["-h"])
        .status(0)
        .stdout("-V, --version")
        .run();
}

#[test]
fn quiet_drops_progress_and_summary_and_json_forces_json_lines_at_a_terminal() {
    let (screen, status, _env) =
        common::harness::on_a_terminal("baleine-ps", "-q --timeout 20 1-2", "", "");
    assert_eq!(status, Some(1), "{screen}");
    assert!(
        screen.contains("fit02  ! connect: ssh: Could not resolve"),
        "the rows are the same: {screen}"
    );
    assert!(!screen.contains("every record is in"), "{screen}");
    assert!(!screen.contains("ps: 2 nodes"), "{screen}");
    // ps shows a table at a terminal; --json gives it the JSON lines.
    let (screen, status, _env) =
        common::harness::on_a_terminal("baleine-ps", "--json --dry-run 1-2", "", "");
    assert_eq!(status, Some(0), "{screen}");
    assert!(
        screen.contains(r#"{"node":"fit01","action":"ps","ok":true"#),
        "{screen}"
    );
    for tool in ["baleine-list", "baleine-rmi", "baleine-build"] {
        Test::new(tool)
            .args(&["--help"])
            .status(0)
            .stdout("-q, --quiet")
            .stdout("--json")
            .run();
    }
}

#[test]
fn on_a_terminal_every_tool_shows_one_row_per_node_in_order() {
    let env = common::harness::TestEnv::new();
    let local = env.local_nodes();
    let (screen, status, env) = common::harness::on_a_terminal_in(
        env,
        "baleine-deploy",
        "-i busybox fit10 fit02 fit03 -- sleep 1",
        &local,
        "",
    );
    assert_eq!(status, Some(0), "{screen}");
    // (The progress line, cleared, stands before the table's first row.)
    let rows: Vec<&str> = screen
        .split(['\n', '\r'])
        .map(|l| l.rsplit("\x1b[K").next().unwrap_or(l))
        .filter(|l| l.starts_with("NODE") || l.starts_with("fit"))
        .collect();
    assert_eq!(rows.len(), 4, "a header and a row per node: {screen}");
    assert!(rows[0].starts_with("NODE   IMAGE    DIGEST"), "{screen}");
    for (row, node) in rows[1..].iter().zip(["fit02", "fit03", "fit10"]) {
        assert!(
            row.starts_with(&format!("{node:<5}  busybox  ")),
            "{screen}"
        );
        // The time a person reads, not milliseconds.
        assert!(row.trim_end().ends_with('s'), "{screen}");
    }
    assert!(
        !screen.contains("{\"node\""),
        "JSON on a terminal: {screen}"
    );
    // Every fleet tool has its table; --json gives the JSON lines back.
    let (screen, status, env) =
        common::harness::on_a_terminal_in(env, "baleine-destroy", "-y fit02 fit03", &local, "");
    assert_eq!(status, Some(0), "{screen}");
    assert!(screen.contains("NODE   CONTAINER"), "{screen}");
    assert!(screen.contains("fit02  container  removed"), "{screen}");
    let (screen, _, _) =
        common::harness::on_a_terminal_in(env, "baleine-destroy", "--json -y fit02", &local, "");
    assert!(
        screen.contains(r#"{"node":"fit02","action":"destroy""#),
        "{screen}"
    );
    // A dry run says what each node would run, not its script's JSON.
    let (screen, status, _) =
        common::harness::on_a_terminal("baleine-destroy", "--dry-run fit01", "", "");
    assert_eq!(status, Some(0), "{screen}");
    assert!(screen.contains("fit01  a "), "{screen}");
    assert!(
        screen.contains("-line script over ssh (--json shows it)"),
        "{screen}"
    );
}

#[test]
fn the_retry_tip_comes_only_when_a_retry_can_help() {
    // A refused input line: nothing a retry mends.
    let env = common::harness::TestEnv::new();
    let input = env.write("input", "{\"node\":\"fit01\",\"image\":7}\n");
    let (screen, status, _env) = common::harness::on_a_terminal(
        "baleine-deploy",
        &format!("-i busybox < {}", input.display()),
        "",
        "",
    );
    assert_eq!(status, Some(2), "{screen}");
    assert!(
        screen.contains("1 input: stdin line 1: field image: a string, not a number"),
        "{screen}"
    );
    assert!(!screen.contains("retry the failed"), "{screen}");
}

#[test]
fn dash_is_stdin_for_exec_s_stdin() {
    let records = Test::new("baleine-exec")
        .local_nodes()
        .args(&["fit01", "fit02", "--stdin", "-", "--", "cat"])
        .stdin("fed to every node\n")
        .status(0)
        .nodes(2)
        .run();
    for record in &records {
        assert_eq!(record["stdout"], "fed to every node\n", "{record}");
    }
    // Then the nodes cannot come from stdin too.
    Test::new("baleine-exec")
        .args(&["--stdin", "-", "--", "cat"])
        .stdin("fit01\n")
        .status(2)
        .stderr("--stdin - gives stdin to the command: give the nodes as arguments")
        .run();
}

#[test]
fn dash_is_stdin_for_build_s_dockerfile_and_context() {
    let registry = registry_of_the_test();
    let url = format!(
        "REGISTRY_URL = 127.0.0.1:{0}\nSAVE_URL = 127.0.0.1:{0}",
        registry.port
    );
    let keep = common::harness::TestEnv::new();
    let seen = keep.path("seen");
    let context = keep.path("ctx");
    std::fs::create_dir_all(&context).unwrap();
    let context = context.to_str().unwrap().to_owned();
    for (args, given) in [
        (
            vec!["-f", "-", context.as_str()],
            "FROM busybox\nRUN echo from stdin\n",
        ),
        (vec!["-"], "a tar of the context, as bytes\n"),
    ] {
        let test = Test::new("baleine-build");
        // The gateway docker keeps what it was given to build from: the
        // file after -f, or its stdin for the context `-`.
        let docker = gateway_docker(
            &test,
            &format!(
                "for a; do last=$a; done; if [ \"$last\" = - ]; then cat >{0}; else cat \"$4\" >{0}; fi",
                seen.display()
            ),
        );
        let mut all = vec!["-t", "exp:v1", "--force"];
        all.extend(args);
        test.config(&url)
            .config(&docker)
            .args(&all)
            .stdin(given)
            .status(0)
            .run();
        assert_eq!(std::fs::read_to_string(&seen).unwrap(), given);
    }
    Test::new("baleine-build")
        .args(&["-t", "exp:v1", "-f", "-", "-"])
        .status(2)
        .stderr("stdin can give the Dockerfile (-f -) or the context (-), not both")
        .run();
}

#[test]
fn exec_follow_streams_each_line_as_a_record_then_the_node_s_record() {
    let records = Test::new("baleine-exec")
        .local_nodes()
        .args(&[
            "--follow",
            "fit01",
            "fit02",
            "--",
            "sh",
            "-c",
            "echo one; echo two >&2",
        ])
        .status(0)
        .stdout(r#"{"node":"fit01","stream":"stdout","line":"one"}"#)
        .stdout(r#"{"node":"fit02","stream":"stderr","line":"two"}"#)
        .nodes(2)
        .run();
    // The line records are not the nodes' records: one record per node.
    for end in &records {
        assert_eq!(
            (&end["exit_code"], &end["stdout_bytes"]),
            (&0.into(), &4.into()),
            "{end}"
        );
    }
    Test::new("baleine-exec")
        .args(&["--follow", "--output-dir", "/tmp/x", "1", "--", "true"])
        .status(2)
        .stderr("--follow writes records as lines come")
        .run();
}

#[test]
fn file_names_need_not_be_utf8_but_commands_and_options_must_be() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = common::harness::TestEnv::new();
    // "café.txt" in Latin-1, as an old archive names it.
    let name = env.path("").join(OsStr::from_bytes(b"caf\xe9.txt"));
    std::fs::write(&name, "latin\n").unwrap();
    let conf = env.write("baleine.conf", &env.base_config());
    let run = |tool: &str, args: &[&OsStr]| {
        let mut command = std::process::Command::new(common::binary(tool));
        common::scrub_environment(&mut command);
        command
            .args(args)
            .env("BALEINE_CONFIG", &conf)
            .env("HOME", env.path("home"))
            .output()
            .unwrap()
    };
    let os = |s: &'static str| OsStr::new(s);
    // A file to send: packed under its own bytes.
    let out = run(
        "baleine-cp",
        &[
            os("--dry-run"),
            os("fit01"),
            os("--to"),
            os("/in"),
            os("--"),
            name.as_os_str(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A command's word or an option is text: refused, named, exit 2.
    let bad = OsStr::from_bytes(b"\xff");
    for (tool, args) in [
        ("baleine-exec", vec![os("fit01"), os("--"), os("echo"), bad]),
        ("baleine-ps", vec![bad]),
    ] {
        let out = run(tool, &args);
        assert_eq!(out.status.code(), Some(2), "{tool}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(r#""\xFF" is not valid UTF-8"#),
            "{tool}: {stderr}"
        );
    }
}

/// A deploy of busybox on three local nodes whose first node's pull waits
/// until `gate` exists, once every node has its session (the followers
/// waiting for their pin).
fn deploy_held_at_the_first_pull(
    env: &common::harness::TestEnv,
    gate: &std::path::Path,
) -> std::process::Child {
    let conf = env.write("baleine.conf", &(env.base_config() + &env.local_nodes()));
    let sessions = env.path("sessions");
    let mut command = std::process::Command::new(common::binary("baleine-deploy"));
    common::scrub_environment(&mut command);
    let child = command
        .args([
            "-i", "busybox", "fit01", "fit02", "fit03", "--", "sleep", "1",
        ])
        .env("BALEINE_CONFIG", &conf)
        .env("HOME", env.path("home"))
        .env("FAKE_PULL_GATE", gate)
        .env("LOCAL_SESSIONS", &sessions)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_until("a session on every node", 30, || {
        std::fs::read_to_string(&sessions).is_ok_and(|s| s.lines().count() == 3)
    });
    child
}

/// Every follower's session starts at once, while the first node pulls:
/// its key exchange and login overlap the pull, and it waits for its pin
/// on stdin. Held here by a pull that waits for the test's word.
#[test]
fn followers_start_their_session_while_the_first_node_pulls() {
    let env = common::harness::TestEnv::new();
    let gate = env.path("pull-may-end");
    // The first node's pull cannot end, yet every node has its session.
    let child = deploy_held_at_the_first_pull(&env, &gate);
    std::fs::write(&gate, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = common::records(&out);
    assert_eq!(records.len(), 3);
    // Two followers, pinned to what the first node resolved.
    assert_eq!(records.iter().filter(|r| r["pinned"] == true).count(), 2);
    assert!(records.iter().all(|r| r["digest"] == records[0]["digest"]));
}

/// Stopped before their pin came, followers' records say they had not
/// started and their old container was left as it was.
#[test]
fn followers_stopped_before_their_pin_leave_the_node_as_it_was() {
    let env = common::harness::TestEnv::new();
    // A pull that never ends: the first node never has the digest.
    let child = deploy_held_at_the_first_pull(&env, &env.path("never"));
    common::signal(&child, nix::sys::signal::Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    let records = common::records(&out);
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(record["stage"], "interrupted", "{record}");
        let error = record["error"].as_str().unwrap();
        assert!(error.contains("left as it was"), "{record}");
        if record["node"] != "fit01" {
            assert!(error.starts_with("interrupted before starting"), "{record}");
        }
    }
}
