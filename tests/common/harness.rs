//! The hermetic CLI harness: one `Test` chain per run, over a private HOME and configuration.
//!
//! Each test is one chain on [`Test`] (tool, args, stdin, config, then what
//! a user would see: status, stdout records, stderr). Every run also
//! re-checks, for free, the record invariant: each stdout line of a fleet
//! tool is a JSON object opening with node, action and ok, and a failed
//! record has a stage and an error; with `.nodes(N)`, exactly one record per
//! node.

use super::binary;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A private HOME and configuration, so nothing of the machine's or the
/// caller's (files, BALEINE_* variables, $NODES, the ssh configuration, the
/// resolver) reaches the tool.
pub struct TestEnv {
    dir: PathBuf,
}

/// The ssh configuration of every hermetic run (`ssh -F` reads it instead of
/// ~/.ssh/config and /etc/ssh/ssh_config): on an R2Lab gateway fit01
/// resolves and the user's configuration names the nodes, so a node here is
/// NAME.invalid, a name no resolver answers (RFC 6761).
const SSH_CONFIG: &str = "Host *\n  Hostname %h.invalid\n  UserKnownHostsFile /dev/null\n  \
                          GlobalKnownHostsFile /dev/null\n  ConnectTimeout 5\n";

impl TestEnv {
    pub fn new() -> TestEnv {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("baleine-cli-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).unwrap();
        std::fs::write(dir.join("ssh_config"), SSH_CONFIG).unwrap();
        TestEnv { dir }
    }

    /// The configuration every hermetic run starts from: no kept
    /// connections (nothing left in /tmp), and ssh reading only the test's
    /// own configuration.
    pub fn base_config(&self) -> String {
        format!(
            "SSH_CONTROL_PERSIST = 0\nSSH = ssh -F {}\n",
            self.path("ssh_config").display()
        )
    }

    /// Configuration lines that make every node a "local node": ssh is a
    /// wrapper running the remote command here, docker the bench's stand-in
    /// (tests/bench/fake-docker), so the success paths run without root,
    /// sshd or dockerd.
    pub fn local_nodes(&self) -> String {
        let ssh = self.write_script(
            "local-ssh",
            "#!/bin/sh\n\
             # ssh to a \"local node\": the remote command runs here (`-Q kex` lists nothing).\n\
             [ \"$1\" = -Q ] && exit 0\n\
             while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
             # Each session's node, where a test asks for them ($LOCAL_SESSIONS).\n\
             [ -z \"$LOCAL_SESSIONS\" ] || echo \"$2\" >>\"$LOCAL_SESSIONS\"\n\
             shift 2\n\
             SCALE_DELAY=0 exec sh -c \"$1\"\n",
        );
        format!(
            // The registries a deploy checks its pin with: a closed port
            // of loopback (never the gateway's, on an R2Lab gateway).
            "SSH = {}\nDOCKER = {}/tests/bench/fake-docker\nREGISTRY_URL = 127.0.0.9:9\n",
            ssh.display(),
            env!("CARGO_MANIFEST_DIR")
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `write`, then `chmod mode`.
    pub fn write_mode(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.write(name, text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A script of the test's own (a hostile ssh, a credential helper).
    pub fn write_script(&self, name: &str, text: &str) -> PathBuf {
        self.write_mode(name, text, 0o755)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One CLI run and what it must show.
#[must_use = "a Test checks nothing until .run()"]
pub struct Test {
    pub env: TestEnv,
    tool: &'static str,
    args: Vec<std::ffi::OsString>,
    stdin: Vec<u8>,
    config: String,
    vars: Vec<(String, String)>,
    status: Option<i32>,
    nodes: Option<usize>,
    stderr_has: Vec<String>,
    stderr_lacks: Vec<String>,
    stdout_has: Vec<String>,
    wrapper: Option<&'static str>,
    config_mode: Option<u32>,
}

impl Test {
    pub fn new(tool: &'static str) -> Test {
        let env = TestEnv::new();
        Test {
            config: env.base_config(),
            env,
            tool,
            args: Vec::new(),
            stdin: Vec::new(),
            vars: Vec::new(),
            status: None,
            nodes: None,
            stderr_has: Vec::new(),
            stderr_lacks: Vec::new(),
            stdout_has: Vec::new(),
            wrapper: None,
            config_mode: None,
        }
    }

    pub fn args(mut self, args: &[&str]) -> Test {
        self.args.extend(args.iter().map(Into::into));
        self
    }

    pub fn raw_arg(mut self, arg: std::ffi::OsString) -> Test {
        self.args.push(arg);
        self
    }

    pub fn stdin(mut self, text: &str) -> Test {
        self.stdin = text.as_bytes().to_vec();
        self
    }

    pub fn config(mut self, line: &str) -> Test {
        self.config.push_str(line);
        self.config.push('\n');
        self
    }

    /// The run goes to the shared testbed (`make test` brings it up): its
    /// configuration (ssh, registries, nodes) instead of the hermetic one;
    /// HOME and the state files stay the test's own.
    pub fn testbed(mut self, tb: &super::Testbed) -> Test {
        self.config =
            std::fs::read_to_string(tb.baleine_conf()).expect("the testbed's configuration");
        self.config.push('\n');
        self
    }

    /// Every node is a local node (see [`TestEnv::local_nodes`]).
    pub fn local_nodes(mut self) -> Test {
        let lines = self.env.local_nodes();
        self.config.push_str(&lines);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.vars.push((key.into(), value.into()));
        self
    }

    /// The number of the configuration file's last line so far (the one
    /// `config` added last), for errors that name file:line.
    pub fn last_config_line(&self) -> usize {
        self.config.lines().count()
    }

    /// The configuration file's permission bits.
    pub fn config_mode(mut self, mode: u32) -> Test {
        self.config_mode = Some(mode);
        self
    }

    /// Runs the tool in a new session, with no controlling terminal.
    pub fn without_terminal(mut self) -> Test {
        self.wrapper = Some("setsid");
        self
    }

    pub fn status(mut self, code: i32) -> Test {
        self.status = Some(code);
        self
    }

    /// Exactly one record for each of `count` distinct nodes.
    pub fn nodes(mut self, count: usize) -> Test {
        self.nodes = Some(count);
        self
    }

    pub fn stderr(mut self, text: &str) -> Test {
        self.stderr_has.push(text.into());
        self
    }

    /// Text stderr must not hold.
    pub fn stderr_lacks(mut self, text: &str) -> Test {
        self.stderr_lacks.push(text.into());
        self
    }

    pub fn stdout(mut self, text: &str) -> Test {
        self.stdout_has.push(text.into());
        self
    }

    /// Runs it, checks everything asked and the record invariant, and
    /// returns the records.
    pub fn run(self) -> Vec<Value> {
        let conf = self.env.write("baleine.conf", &self.config);
        if let Some(mode) = self.config_mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let mut command = match self.wrapper {
            Some(wrapper) => {
                let mut c = Command::new(wrapper);
                c.arg(binary(self.tool));
                c
            }
            None => Command::new(binary(self.tool)),
        };
        super::scrub_environment(&mut command);
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
        for text in &self.stderr_lacks {
            assert!(
                !stderr.contains(text.as_str()),
                "{text:?} on stderr: {context}"
            );
        }
        for text in &self.stdout_has {
            assert!(
                stdout.contains(text.as_str()),
                "no {text:?} on stdout: {context}"
            );
        }
        let fleet_tool = !matches!(self.tool, "baleine-list" | "rdsh");
        let informational = self
            .args
            .iter()
            .any(|a| a == "--help" || a == "-h" || a == "--version" || a == "-V")
            || self.args.first().is_some_and(|a| a == "help")
            || self.vars.iter().any(|(k, _)| k == "BALEINE_COMPLETE");
        let is_records =
            fleet_tool && !informational && matches!(out.status.code(), Some(0 | 1 | 2 | 130));
        let records: Vec<Value> = if is_records {
            stdout
                .lines()
                // A stream's line as it came (--follow): a record of its
                // own, `{"node","stream","line"}`, not the node's record.
                .filter(|line| {
                    let value: Value = serde_json::from_str(line).unwrap_or_default();
                    let streamed = value["stream"].is_string() && value["line"].is_string();
                    assert!(
                        !streamed || line.starts_with(r#"{"node":""#),
                        "a stream's line opens with node: {line}\n{context}"
                    );
                    !streamed
                })
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

/// Runs `tool args` on a terminal of its own (util-linux `script`), in a
/// private HOME, and returns what the terminal showed, the exit status and
/// that HOME's environment.
pub fn on_a_terminal(
    tool: &str,
    args: &str,
    config: &str,
    stdin: &str,
) -> (String, Option<i32>, TestEnv) {
    on_a_terminal_in(TestEnv::new(), tool, args, config, stdin)
}

/// [`on_a_terminal`] in `env` (whose local nodes `config` may name).
pub fn on_a_terminal_in(
    env: TestEnv,
    tool: &str,
    args: &str,
    config: &str,
    stdin: &str,
) -> (String, Option<i32>, TestEnv) {
    let conf = env.write("baleine.conf", &format!("{}{config}", env.base_config()));
    let home = env.path("home");
    let mut command = std::process::Command::new("script");
    super::scrub_environment(&mut command);
    let out = command
        .args(["-qefc", &format!("{} {args}", binary(tool)), "/dev/null"])
        .env("BALEINE_CONFIG", &conf)
        .env("HOME", &home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
            child.wait_with_output()
        })
        .expect("script runs");
    // The env goes back to the caller, who reads the state files under its
    // HOME; dropping it there removes the directory.
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
        env,
    )
}
