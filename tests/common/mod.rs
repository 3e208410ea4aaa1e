//! What every integration test needs: the shared local testbed, its nodes, and ssh to them.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The testbed brought up once by `make test` (tests/testbed/testbed up N).
pub struct Testbed {
    pub dir: PathBuf,
    pub nodes: Vec<String>,
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
        Testbed { dir, nodes }
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

    /// GET on a testbed registry from the gateway, e.g. `http://127.0.2.1:81/v2/_catalog`.
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

/// Where the repo registry (faraday.repo:80) and the mirror (faraday.repo:81) answer from the gateway.
pub const REPO_URL: &str = "http://127.0.2.1:80";
pub const MIRROR_URL: &str = "http://127.0.2.1:81";

/// A name no other test run uses, for things a test creates in shared registries.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}
