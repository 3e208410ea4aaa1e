//! What every integration test needs: the shared local testbed, its nodes, and ssh to them.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The testbed brought up once by `make test` (tests/testbed/testbed up N).
pub struct Testbed {
    pub dir: PathBuf,
    pub nodes: Vec<String>,
    /// The repo registry (faraday.repo:80) and the mirror (faraday.repo:81),
    /// as the gateway reaches them.
    pub repo_url: String,
    pub mirror_url: String,
}

impl Testbed {
    /// The running testbed; fails with instructions when there is none, rather than
    /// skipping: a test that did not run must not look like a test that passed.
    pub fn get() -> Testbed {
        let dir = PathBuf::from(
            std::env::var("BALEINE_TESTBED_DIR").unwrap_or_else(|_| "/tmp/baleine-testbed".into()),
        );
        let count: usize = std::fs::read_to_string(dir.join("node-count"))
            .unwrap_or_else(|_| {
                panic!(
                    "no testbed in {}: run `make test`, or `make testbed-up` then `cargo test`",
                    dir.display()
                )
            })
            .trim()
            .parse()
            .expect("node-count holds a number");
        let nodes = (1..=count).map(|i| format!("fit{i:02}")).collect();
        let url = |name: &str| {
            std::fs::read_to_string(dir.join(format!("registries/{name}/url")))
                .expect("testbed registry url")
                .trim()
                .to_owned()
        };
        Testbed {
            repo_url: url("repo"),
            mirror_url: url("mirror"),
            dir,
            nodes,
        }
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// The baleine configuration file the testbed wrote for the tools.
    pub fn baleine_conf(&self) -> PathBuf {
        self.dir.join("baleine.conf")
    }

    /// Runs `command` (a remote shell string) on `node` as root over the testbed's ssh.
    pub fn ssh(&self, node: &str, command: &str) -> Output {
        self.ssh_as("root", node, command)
    }

    pub fn ssh_as(&self, user: &str, node: &str, command: &str) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .arg("-l")
            .arg(user)
            .arg(node)
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs")
    }

    /// Runs `command` on `node` and returns its stdout, failing the test with stderr otherwise.
    pub fn ssh_ok(&self, node: &str, command: &str) -> String {
        let out = self.ssh(node, command);
        assert!(
            out.status.success(),
            "{node}: `{command}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The real rhubarbe, configured for this testbed.
    pub fn rhubarbe(&self, args: &[&str]) -> Output {
        Command::new(self.dir.join("bin/rhubarbe"))
            .args(args)
            .output()
            .expect("rhubarbe runs")
    }

    /// GET on a testbed registry from the gateway, e.g. `{mirror_url}/v2/_catalog`.
    pub fn http_get(&self, url: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", url])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
        (code.parse().unwrap_or(0), body.to_string())
    }
}

/// A name no other test run uses, for things a test creates in shared registries.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// One of our built tools, pointed at the testbed's configuration and
/// nothing else (no BALEINE_* overrides leak in from the caller).
pub fn tool(tb: &Testbed, name: &str) -> Command {
    let path = match name {
        "baleine-deploy" => env!("CARGO_BIN_EXE_baleine-deploy"),
        "baleine-destroy" => env!("CARGO_BIN_EXE_baleine-destroy"),
        "baleine-save" => env!("CARGO_BIN_EXE_baleine-save"),
        "baleine-list" => env!("CARGO_BIN_EXE_baleine-list"),
        other => panic!("no tool {other}"),
    };
    let mut command = Command::new(path);
    for (key, _) in std::env::vars() {
        if key.starts_with("BALEINE_") || key == "NODES" {
            command.env_remove(key);
        }
    }
    command.env("BALEINE_CONFIG", tb.baleine_conf());
    command
}

/// Runs `command` with `input` on stdin and waits for it.
pub fn run_with_stdin(mut command: Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tool starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("tool ends")
}

/// The JSON records a tool printed, one per line; every line must be JSON.
pub fn records(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect()
}

/// The record for `node` among `records`; exactly one must exist.
pub fn record_of<'a>(records: &'a [serde_json::Value], node: &str) -> &'a serde_json::Value {
    let matching: Vec<_> = records.iter().filter(|r| r["node"] == node).collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one record for {node}: {records:#?}"
    );
    matching[0]
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A testbed component stopped for a test, started again when dropped (even
/// when the test fails), e.g. `fit02/sshd` or `fit03/docker`.
pub struct Stopped<'a> {
    tb: &'a Testbed,
    target: String,
}

/// dockerd of a node frozen with SIGSTOP (a node that hangs), thawed on drop.
pub struct Frozen {
    pid: String,
}

impl Testbed {
    fn control(&self, verb: &str, target: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/testbed");
        let status = Command::new(script)
            .args([verb, target])
            .env("BALEINE_TESTBED_DIR", &self.dir)
            .status()
            .expect("testbed script runs");
        assert!(status.success(), "testbed {verb} {target} failed");
    }

    pub fn stop(&self, target: &str) -> Stopped<'_> {
        self.control("stop", target);
        Stopped {
            tb: self,
            target: target.to_owned(),
        }
    }

    pub fn freeze_docker(&self, node: &str) -> Frozen {
        let pid = std::fs::read_to_string(self.dir.join(format!("pids/{node}.docker")))
            .expect("dockerd pid file")
            .trim()
            .to_owned();
        assert!(Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success());
        Frozen { pid }
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.tb.control("start", &self.target);
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid]).status();
    }
}
