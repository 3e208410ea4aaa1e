//! Hermetic CLI tests: the real binaries, no testbed, no root services, no network but loopback.
//!
//! Each test is one chain on [`Test`] (tool, args, stdin, config, then what
//! a user would see: status, stdout records, stderr). Every run also
//! re-checks, for free, the record invariant: each stdout line of a fleet
//! tool is a JSON object opening with node, action and ok, and a failed
//! record has a stage and an error; with `.nodes(N)`, exactly one record per
//! node.

mod common;

use common::binary;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A private HOME and configuration, so nothing of the machine's or the
/// caller's (files, BALEINE_* variables, $NODES) reaches the tool.
struct TestEnv {
    dir: PathBuf,
}

impl TestEnv {
    fn new() -> TestEnv {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("baleine-cli-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).unwrap();
        TestEnv { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One CLI run and what it must show.
struct Test {
    env: TestEnv,
    tool: &'static str,
    args: Vec<std::ffi::OsString>,
    stdin: Vec<u8>,
    config: String,
    vars: Vec<(String, String)>,
    status: Option<i32>,
    nodes: Option<usize>,
    stderr_has: Vec<String>,
    stdout_has: Vec<String>,
    wrapper: Option<&'static str>,
}

impl Test {
    fn new(tool: &'static str) -> Test {
        Test {
            env: TestEnv::new(),
            tool,
            args: Vec::new(),
            stdin: Vec::new(),
            // No kept connections: nothing is left behind in /tmp.
            config: "SSH_CONTROL_PERSIST = 0\n".into(),
            vars: Vec::new(),
            status: None,
            nodes: None,
            stderr_has: Vec::new(),
            stdout_has: Vec::new(),
            wrapper: None,
        }
    }

    fn args(mut self, args: &[&str]) -> Test {
        self.args.extend(args.iter().map(Into::into));
        self
    }

    fn raw_arg(mut self, arg: std::ffi::OsString) -> Test {
        self.args.push(arg);
        self
    }

    fn stdin(mut self, text: &str) -> Test {
        self.stdin = text.as_bytes().to_vec();
        self
    }

    fn config(mut self, line: &str) -> Test {
        self.config.push_str(line);
        self.config.push('\n');
        self
    }

    fn env(mut self, key: &str, value: &str) -> Test {
        self.vars.push((key.into(), value.into()));
        self
    }

    /// Runs the tool in a new session, with no controlling terminal.
    fn without_terminal(mut self) -> Test {
        self.wrapper = Some("setsid");
        self
    }

    fn status(mut self, code: i32) -> Test {
        self.status = Some(code);
        self
    }

    /// Exactly one record for each of `count` distinct nodes.
    fn nodes(mut self, count: usize) -> Test {
        self.nodes = Some(count);
        self
    }

    fn stderr(mut self, text: &str) -> Test {
        self.stderr_has.push(text.into());
        self
    }

    fn stdout(mut self, text: &str) -> Test {
        self.stdout_has.push(text.into());
        self
    }

    /// Runs it, checks everything asked and the record invariant, and
    /// returns the records.
    fn run(self) -> Vec<Value> {
        let conf = self.env.write("baleine.conf", &self.config);
        let mut command = match self.wrapper {
            Some(wrapper) => {
                let mut c = Command::new(wrapper);
                c.arg(binary(self.tool));
                c
            }
            None => Command::new(binary(self.tool)),
        };
        for (key, _) in std::env::vars() {
            if key.starts_with("BALEINE_") || key == "NODES" || key == "DOCKER_CONFIG" {
                command.env_remove(key);
            }
        }
        command
            .args(&self.args)
            .env("HOME", self.env.path("home"))
            .env("XDG_CONFIG_HOME", self.env.path("home/.config"))
            .env("BALEINE_CONFIG", &conf)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the tool starts");
        let mut stdin = child.stdin.take().unwrap();
        let input = self.stdin.clone();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("the tool ends");
        feeder.join().unwrap();
        self.check(&out)
    }

    fn check(&self, out: &Output) -> Vec<Value> {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let context = format!(
            "{} {:?}\nstatus: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.tool, self.args, out.status
        );
        if let Some(code) = self.status {
            assert_eq!(out.status.code(), Some(code), "{context}");
        }
        for text in &self.stderr_has {
            assert!(
                stderr.contains(text.as_str()),
                "no {text:?} on stderr: {context}"
            );
        }
        for text in &self.stdout_has {
            assert!(
                stdout.contains(text.as_str()),
                "no {text:?} on stdout: {context}"
            );
        }
        let fleet_tool = !matches!(self.tool, "baleine-list" | "rdsh");
        let informational = self.args.iter().any(|a| a == "--help" || a == "--version")
            || self.vars.iter().any(|(k, _)| k == "BALEINE_COMPLETE");
        let is_records =
            fleet_tool && !informational && matches!(out.status.code(), Some(0 | 1 | 130));
        let records: Vec<Value> = if is_records {
            stdout
                .lines()
                .map(|line| {
                    assert!(
                        opens_with_node_action_ok(line),
                        "a record opens with node, action, ok: {line}\n{context}"
                    );
                    serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{context}"))
                })
                .collect()
        } else {
            Vec::new()
        };
        for record in &records {
            assert!(record["ok"].is_boolean(), "{record}");
            if record["ok"] == false {
                assert!(
                    record["stage"].is_string() && record["error"].is_string(),
                    "a failed record says where and why: {record}"
                );
            }
        }
        if let Some(count) = self.nodes {
            let mut nodes: Vec<String> = records
                .iter()
                .map(|r| r["node"].as_str().unwrap_or("null").to_owned())
                .collect();
            nodes.sort();
            nodes.dedup();
            assert_eq!(records.len(), count, "one record per node: {context}");
            assert_eq!(nodes.len(), count, "one record per node: {context}");
        }
        records
    }
}

/// `{"node":<string or null>,"action":"<word>","ok":<bool>` and more.
fn opens_with_node_action_ok(line: &str) -> bool {
    let Some(rest) = line.strip_prefix(r#"{"node":"#) else {
        return false;
    };
    let rest = match rest.strip_prefix("null") {
        Some(rest) => rest,
        None => match rest.strip_prefix('"').and_then(|r| r.split_once('"')) {
            Some((_, rest)) => rest,
            None => return false,
        },
    };
    let Some((action, rest)) = rest
        .strip_prefix(r#","action":""#)
        .and_then(|r| r.split_once('"'))
    else {
        return false;
    };
    !action.is_empty() && (rest.starts_with(r#","ok":true"#) || rest.starts_with(r#","ok":false"#))
}

const FLEET_TOOLS: [&str; 5] = [
    "baleine-deploy",
    "baleine-destroy",
    "baleine-save",
    "baleine-ps",
    "baleine-exec",
];
const ALL_TOOLS: [&str; 7] = [
    "baleine-deploy",
    "baleine-destroy",
    "baleine-save",
    "baleine-list",
    "baleine-ps",
    "baleine-exec",
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
    for tool in FLEET_TOOLS.iter().chain(&["baleine-list"]) {
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
    ] {
        Test::new(tool)
            .args(&["--help"])
            .status(0)
            .stdout(&format!("(default: {seconds})"))
            .run();
    }
}

#[test]
fn deploy_needs_an_image() {
    Test::new("baleine-deploy")
        .args(&["1"])
        .status(2)
        .stderr("Required options not provided")
        .stderr("--image")
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
        .stderr("invalid node")
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
    test.args(&["1"])
        .status(2)
        .stderr(&format!("{conf}:2"))
        .stderr("PARALLEL")
        .run();
}

#[test]
fn an_unknown_configuration_key_is_reported_with_its_line() {
    let test = Test::new("baleine-destroy").config("NO_SUCH_KEY = 1");
    let conf = test.env.path("baleine.conf").display().to_string();
    test.args(&["-y", "--dry-run", "1"])
        .status(0)
        .nodes(1)
        .stderr(&format!("{conf}:2: unknown key \"NO_SUCH_KEY\""))
        .run();
}

#[test]
fn an_empty_stdin_is_an_empty_run() {
    let records = Test::new("baleine-ps").status(0).nodes(0).run();
    assert!(records.is_empty());
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
        assert_eq!(ssh[dashes + 2], record["script"].as_str().unwrap());
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
        .status(2)
        .stderr("rdsh:")
        .run();
}

/// A loopback port nothing listens on.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A registry of the test's own on loopback that lists one repository to
/// whoever sends `Basic expected`, and answers 401 to anyone else. Returns
/// its port; it serves `requests` requests, then stops.
fn registry_requiring(expected: &'static str, requests: usize) -> u16 {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut authorized = false;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    authorized = line.trim_end().ends_with(&format!("Basic {expected}"));
                }
                line.clear();
            }
            let answer = if authorized {
                let body = r#"{"repositories":[]}"#;
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    port
}

#[test]
fn docker_login_credentials_are_found_through_docker_config() {
    // "user:pass"
    let port = registry_requiring("dXNlcjpwYXNz", 4);
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
    use std::os::unix::fs::PermissionsExt;
    // "helper:secret"
    let port = registry_requiring("aGVscGVyOnNlY3JldA==", 4);
    let test = Test::new("baleine-list").config(&format!("REGISTRY_URL = 127.0.0.1:{port}"));
    let helper = test.env.write(
        "bin/docker-credential-baleinetest",
        "#!/bin/sh\ncat >/dev/null\necho '{\"Username\":\"helper\",\"Secret\":\"secret\"}'\n",
    );
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    test.env.write(
        "docker-config/config.json",
        &format!(r#"{{"credHelpers":{{"127.0.0.1:{port}":"baleinetest"}}}}"#),
    );
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
    let port = registry_requiring("dXNlcjpwYXNz", 2);
    Test::new("baleine-list")
        .config(&format!("REGISTRY_URL = 127.0.0.1:{port}"))
        .status(1)
        .stderr("needs credentials")
        .run();
}
