//! What every integration test needs: the shared local testbed, its nodes, and ssh to them.
#![allow(dead_code)] // each test binary uses its own subset

pub mod harness;

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

    /// The HTTP status of a DELETE of `url`.
    pub fn http_delete(&self, url: &str) -> u16 {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "DELETE",
                url,
            ])
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
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
    let mut command = Command::new(binary(name));
    scrub_environment(&mut command);
    command.env("BALEINE_CONFIG", tb.baleine_conf());
    command
}

/// Takes out of `command`'s environment whatever of the caller's would
/// change what a tool does: BALEINE_* settings, $NODES, a Docker client
/// configuration, XDG directories (configuration, state files). Every test
/// run of a tool, hermetic or on the testbed, goes through here.
pub fn scrub_environment(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("BALEINE_")
            || matches!(
                key,
                "NODES" | "DOCKER_CONFIG" | "XDG_CONFIG_HOME" | "XDG_STATE_HOME"
            )
        {
            command.env_remove(key);
        }
    }
}

/// The path of one of our built tools.
pub fn binary(name: &str) -> &'static str {
    match name {
        "baleine" => env!("CARGO_BIN_EXE_baleine"),
        "baleine-build" => env!("CARGO_BIN_EXE_baleine-build"),
        "baleine-logs" => env!("CARGO_BIN_EXE_baleine-logs"),
        "baleine-cp" => env!("CARGO_BIN_EXE_baleine-cp"),
        "baleine-rmi" => env!("CARGO_BIN_EXE_baleine-rmi"),
        "baleine-deploy" => env!("CARGO_BIN_EXE_baleine-deploy"),
        "baleine-destroy" => env!("CARGO_BIN_EXE_baleine-destroy"),
        "baleine-save" => env!("CARGO_BIN_EXE_baleine-save"),
        "baleine-list" => env!("CARGO_BIN_EXE_baleine-list"),
        "baleine-ps" => env!("CARGO_BIN_EXE_baleine-ps"),
        "baleine-exec" => env!("CARGO_BIN_EXE_baleine-exec"),
        "rdsh" => env!("CARGO_BIN_EXE_rdsh"),
        other => panic!("no tool {other}"),
    }
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

/// A testbed process frozen with SIGSTOP (a node's dockerd that hangs, a
/// registry that never answers), thawed on drop.
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
        self.freeze(&format!("{node}.docker"))
    }

    /// Freezes the process the testbed started as `name` (`mirror`, `fit03.docker`).
    pub fn freeze(&self, name: &str) -> Frozen {
        let pid = std::fs::read_to_string(self.dir.join(format!("pids/{name}")))
            .expect("the process's pid file")
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

/// A registry of a test's own (Debian's docker-registry on a free loopback
/// port), for contents the shared testbed must not hold: hundreds of
/// repositories, or htpasswd auth. Stopped and removed when dropped.
pub struct ScratchRegistry {
    pub url: String,
    dir: PathBuf,
    child: std::process::Child,
    /// `user:password` in base64, for the Authorization header.
    basic: Option<String>,
    agent: ureq::Agent,
    /// Repositories already holding the tiny image's blobs.
    linked: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl ScratchRegistry {
    pub fn start(credentials: Option<(&str, &str)>) -> ScratchRegistry {
        let dir = std::env::temp_dir().join(unique("baleine-scratch-registry"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: scratch\n",
            dir.join("data").display()
        );
        if let Some((user, password)) = credentials {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils)");
            assert!(out.status.success());
            std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
            config += &format!(
                "auth:\n  htpasswd:\n    realm: scratch\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs");
        let registry = ScratchRegistry {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            child,
            basic: credentials.map(|(user, password)| base64(&format!("{user}:{password}"))),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(true)
                .build()
                .into(),
            linked: Default::default(),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "scratch registry did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        registry
    }

    /// `host:port`, as REGISTRY_URL takes it.
    pub fn host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    fn request(&self, method: &str, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(true)
            .build()
            .into();
        let mut request = match method {
            "POST" => agent.post(url),
            _ => agent.put(url),
        };
        if let Some(basic) = &self.basic {
            request = request.header("Authorization", format!("Basic {basic}"));
        }
        request
    }

    /// Pushes a one-layer image as `repository:tag` through the registry API.
    pub fn push_tiny_image(&self, repository: &str, tag: &str) {
        const LAYER: &[u8] = b"not really a tar, never pulled";
        const CONFIG: &[u8] =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        static DIGESTS: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        let digests = DIGESTS.get_or_init(|| [sha256(LAYER), sha256(CONFIG)]);
        let mut linked = self.linked.lock().unwrap();
        let mut described = Vec::new();
        for (blob, digest) in [LAYER, CONFIG].into_iter().zip(digests) {
            described.push((digest, blob.len()));
            if linked.contains(repository) {
                continue;
            }
            // Once any repository has the blobs, mount them (one request).
            let from = linked.iter().next().cloned();
            let start = match &from {
                Some(from) => format!(
                    "{}/v2/{repository}/blobs/uploads/?mount={digest}&from={from}",
                    self.url
                ),
                None => format!("{}/v2/{repository}/blobs/uploads/", self.url),
            };
            let response = self
                .request("POST", &start)
                .send_empty()
                .expect("upload starts");
            if response.status() == 201 {
                continue;
            }
            let location = response
                .headers()
                .get("location")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let location = if location.starts_with('/') {
                format!("{}{location}", self.url)
            } else {
                location
            };
            let separator = if location.contains('?') { '&' } else { '?' };
            self.request("PUT", &format!("{location}{separator}digest={digest}"))
                .send(blob)
                .expect("blob upload");
        }
        linked.insert(repository.to_owned());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}}]}}"#,
            described[1].1, described[1].0, described[0].1, described[0].0
        );
        self.request(
            "PUT",
            &format!("{}/v2/{repository}/manifests/{tag}", self.url),
        )
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send(manifest.as_bytes())
        .expect("manifest upload");
    }
}

impl Drop for ScratchRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a coreutils filter over `input` (the tests' own encoders: base64, sha256sum).
fn filter(program: &str, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

fn base64(text: &str) -> String {
    filter("base64", &["-w0"], text.as_bytes())
}

fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        filter("sha256sum", &[], bytes)
            .split_whitespace()
            .next()
            .unwrap()
    )
}

impl Testbed {
    /// `ssh -F <testbed config> -l USER [OPTIONS] NODE`, for a test to add the
    /// remote command and wire stdin as it needs.
    pub fn ssh_command(&self, user: &str, node: &str, options: &[&str]) -> Command {
        let mut command = Command::new("ssh");
        command
            .arg("-F")
            .arg(self.ssh_config())
            .args(["-l", user])
            .args(options)
            .arg(node);
        command
    }

    /// Makes `rdsh` (a build) the container user's shell on every node.
    pub fn install_rdsh(&self, rdsh: &str) {
        self.control("install-rdsh", rdsh);
    }
}

/// A terminal on this machine (a tmux session) running `command`; killed on drop.
pub struct Terminal {
    socket: PathBuf,
}

impl Terminal {
    pub fn start(tb: &Testbed, command: &str) -> Terminal {
        let terminal = Terminal {
            socket: tb.dir.join(unique("tmux")),
        };
        let out = terminal
            .tmux(&[
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "100",
                "-y",
                "30",
            ])
            .arg(command)
            .output()
            .expect("tmux runs");
        assert!(out.status.success(), "tmux: {}", stderr(&out));
        terminal
    }

    pub fn tmux(&self, args: &[&str]) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-S").arg(&self.socket).args(args);
        command
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = self.tmux(args).output().expect("tmux runs");
        assert!(out.status.success(), "tmux {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Presses keys as tmux names them (`Tab`, `C-u`, or literal text).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend(keys);
        self.run(&args);
    }

    /// Types `line` and Enter.
    pub fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-t", "t", "-l", line]);
        self.run(&["send-keys", "-t", "t", "Enter"]);
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-t", "t", "-S", "-200"])
    }

    /// The screen once it shows `text`; fails with the screen after `seconds`.
    pub fn wait_for(&self, text: &str, seconds: u64) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} on the terminal after {seconds} s:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Rows and columns of the terminal, as tmux has them.
    pub fn size(&self) -> String {
        self.run(&[
            "display-message",
            "-p",
            "-t",
            "t",
            "#{pane_height} #{pane_width}",
        ])
        .trim()
        .to_owned()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A turn on the testbed's shared nodes, held across test processes (an
/// flock on a file of the testbed), so that test binaries run side by side
/// (cargo nextest) never touch the same managed container at once.
pub struct NodesTurn {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Testbed {
    /// Waits for the nodes' turn; the turn ends when the guard is dropped.
    pub fn exclusive(&self) -> NodesTurn {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("nodes.lock"))
            .expect("the testbed's lock file");
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .unwrap_or_else(|(_, errno)| panic!("flock: {errno}"));
        NodesTurn { _lock: lock }
    }
}

/// One request as a loopback server of a test saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// GET, HEAD, DELETE...
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub authorization: Option<String>,
}

/// An answer: status, extra headers, body.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// A small HTTP/1.1 server of the test's own on a loopback port, playing
/// whatever registry (or attacker) `answer` describes. It records every
/// request, serves at most `MAX_REQUESTS` of them and then stops, and dies
/// with the test process.
pub struct Loopback {
    pub port: u16,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
}

const MAX_REQUESTS: usize = 20_000;

impl Loopback {
    pub fn serve(answer: impl Fn(&Request) -> Answer + Send + 'static) -> Loopback {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(MAX_REQUESTS) {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let method = line.split_whitespace().next().unwrap_or("").to_owned();
                let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut authorization = None;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).map_or(true, |n| n == 0) || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("authorization") {
                            authorization = Some(value.trim().to_owned());
                        }
                    }
                }
                let request = Request {
                    method,
                    target,
                    authorization,
                };
                let (status, headers, body) = answer(&request);
                log.lock().unwrap().push(request);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head += &format!("{name}: {value}\r\n");
                }
                head += "\r\n";
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        Loopback { port, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

/// A JSON answer with status 200.
pub fn json(body: &str) -> Answer {
    (
        200,
        vec![("Content-Type".into(), "application/json".into())],
        body.as_bytes().to_vec(),
    )
}

/// Polls `condition` until it holds; fails the test naming `what` if it
/// still does not after `seconds` (a bound against hanging, not a speed goal).
pub fn wait_until(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "after {seconds} s, still not: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The command lines of this machine's processes matching `pattern` (pgrep
/// -f). Processes in the testbed's containers are visible here too (same
/// kernel), which is how tests check that nothing was left running.
pub fn processes(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f", "--", pattern])
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| !line.contains("pgrep"))
        .map(String::from)
        .collect()
}

/// Sends `signal` to a child process.
pub fn signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
        .expect("signal the tool");
}
