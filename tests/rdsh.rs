//! rdsh on the testbed: `ssh container@NODE` through the nodes' real sshd and docker lands in the node's managed container, with quoting, stdin, exit status, scp, sftp and terminals intact.

mod common;

use common::{processes, stderr, unique, wait_until, Terminal, Testbed};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const RDSH: &str = env!("CARGO_BIN_EXE_rdsh");

/// The testbed, its nodes running this build of rdsh as the container user's
/// shell: the testbed may have come up before the build, so install it once.
fn testbed() -> Testbed {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let tb = Testbed::get();
    assert!(
        tb.nodes.len() >= 2,
        "rdsh's tests need 2 nodes (testbed up 2)"
    );
    INSTALLED.get_or_init(|| tb.install_rdsh(RDSH));
    tb
}

/// The first node, whose managed container has what a Debian image would for
/// sessions: bash, sftp-server and scp, borrowed read-only from the node (this
/// machine) on top of busybox. Set up once; tests only read it or write
/// files of their own. Returns the node, the container's hostname and the
/// nodes' turn, held for the test.
fn debian_like(tb: &Testbed) -> (String, String, common::NodesTurn) {
    static CONTAINER: OnceLock<String> = OnceLock::new();
    // Other test binaries use the first node too (cargo nextest runs them
    // side by side): hold the nodes for the test.
    let turn = tb.exclusive();
    let node = tb.nodes[0].clone();
    let id = CONTAINER.get_or_init(|| {
        let id = tb.ssh_ok(
            &node,
            "docker rm -f container >/dev/null 2>&1; docker run -d --name container \
             -v /usr/lib:/usr/lib:ro -v /lib:/lib:ro -v /lib64:/lib64:ro \
             -v /usr/bin/bash:/bin/bash:ro -v /usr/bin/scp:/usr/bin/scp:ro busybox sleep 1d",
        );
        id.trim().chars().take(12).collect()
    });
    (node, id.clone(), turn)
}

/// What the second node's managed container is, for a test.
enum State {
    /// busybox: `sh`, but no bash, sftp-server nor scp.
    Busybox,
    /// Exited with status 3.
    Exited,
    Absent,
}

/// The second node, one test at a time, with its container as the test needs it.
struct Scratch {
    node: String,
    _turn: common::NodesTurn,
}

fn scratch(tb: &Testbed, state: State) -> Scratch {
    let turn = tb.exclusive();
    let node = tb.nodes[1].clone();
    let run = match state {
        State::Busybox => "docker run -d --name container busybox sleep 1d >/dev/null",
        State::Exited => {
            "docker run -d --name container busybox sh -c 'exit 3' >/dev/null && \
             docker wait container >/dev/null"
        }
        State::Absent => "true",
    };
    tb.ssh_ok(
        &node,
        &format!("docker rm -f container >/dev/null 2>&1; {run}"),
    );
    Scratch { node, _turn: turn }
}

/// `ssh container@NODE COMMAND` with `input` on stdin, written while the
/// output is read (a big input must not wait for a full output pipe).
fn as_container(tb: &Testbed, node: &str, command: &str, input: &[u8]) -> Output {
    let mut child = tb
        .ssh_command("container", node, &[])
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh starts");
    let mut stdin = child.stdin.take().expect("stdin");
    thread::scope(|s| {
        s.spawn(move || {
            let _ = stdin.write_all(input);
        });
        child.wait_with_output().expect("ssh ends")
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bytes that do not compress and are the same on every run.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let out = thread::scope(|s| {
        s.spawn(move || stdin.write_all(data).expect("feed sha256sum"));
        child.wait_with_output().expect("sha256sum ends")
    });
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A directory of this machine for one test's local files, removed on drop.
struct LocalDir(PathBuf);

impl LocalDir {
    fn new(tb: &Testbed) -> LocalDir {
        let dir = tb.dir.join(unique("rdsh-test"));
        std::fs::create_dir_all(&dir).expect("local test dir");
        LocalDir(dir)
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("local dirs");
        }
        std::fs::write(&path, data).expect("local file");
        path
    }
}

impl Drop for LocalDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn a_command_runs_in_the_container_exactly_as_typed() {
    let tb = testbed();
    let (node, hostname, _nodes) = debian_like(&tb);
    let out = tb.ssh_as("container", &node, r#"echo "a  b""#);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "a  b\n"),
        "{}",
        stderr(&out)
    );
    let out = tb.ssh_as(
        "container",
        &node,
        r#"printf '[%s]\n' 'it'\''s' "$((6 * 7))" '*' "a;b|c" "$0"; hostname"#,
    );
    assert_eq!(
        stdout(&out),
        format!("[it's]\n[42]\n[*]\n[a;b|c]\n[sh]\n{hostname}\n"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_exit_status_comes_back() {
    let tb = testbed();
    let (node, _, _nodes) = debian_like(&tb);
    for (command, status) in [("exit 7", 7), ("true", 0), ("false", 1)] {
        let out = tb.ssh_as("container", &node, command);
        assert_eq!(
            out.status.code(),
            Some(status),
            "{command}: {}",
            stderr(&out)
        );
    }
    let out = tb.ssh_as("container", &node, "no-such-command --here");
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("no-such-command"), "{}", stderr(&out));
    // A command that looks like an option is still the command, not an
    // option of rdsh or of the container's sh.
    let out = tb
        .ssh_command("container", &node, &[])
        .args(["--", "--version"])
        .stdin(Stdio::null())
        .output()
        .expect("ssh runs");
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("--version"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("rdsh"), "{}", stdout(&out));
}

#[test]
fn stdin_streams_into_the_container() {
    let tb = testbed();
    let (node, _, _nodes) = debian_like(&tb);
    let local = LocalDir::new(&tb);
    local.file("tree/a b.txt", b"spaces survive\n");
    local.file("tree/sub/c", b"nested\n");
    let tar = Command::new("tar")
        .args(["c", "-C", path_str(&local.0.join("tree")), "."])
        .output()
        .expect("tar runs");
    assert!(tar.status.success());
    let remote = format!("/tmp/{}", unique("untar"));
    let out = as_container(
        &tb,
        &node,
        &format!("mkdir -p {remote} && tar x -C {remote} && cat '{remote}/a b.txt' {remote}/sub/c"),
        &tar.stdout,
    );
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "spaces survive\nnested\n"),
        "{}",
        stderr(&out)
    );

    // 32 MiB through a pipe, checked end to end; a command reading stdin
    // ends when stdin does.
    let data = noise(32 << 20, 7);
    let start = Instant::now();
    let out = as_container(&tb, &node, "sha256sum", &data);
    let elapsed = start.elapsed();
    assert_eq!(
        stdout(&out).split_whitespace().next(),
        Some(sha256(&data).as_str()),
        "{}",
        stderr(&out)
    );
    eprintln!(
        "32 MiB through ssh container@{node} sha256sum in {:.2} s ({:.0} MB/s)",
        elapsed.as_secs_f64(),
        32.0 * 1.048_576 / elapsed.as_secs_f64()
    );
}

#[test]
fn scp_copies_to_and_from_the_container() {
    let tb = testbed();
    let (node, _, _nodes) = debian_like(&tb);
    let local = LocalDir::new(&tb);
    let data = noise(1 << 20, 11);
    let source = local.file("source", &data);
    let config = tb.ssh_config();
    let config = path_str(&config);
    // Default scp (the sftp protocol), then legacy scp -O (scp in the container).
    for (legacy, remote) in [
        (false, format!("/tmp/{} with spaces", unique("scp"))),
        (true, format!("/tmp/{}", unique("scp-O"))),
    ] {
        let mode: &[&str] = if legacy { &["-O"] } else { &[] };
        let out = Command::new("scp")
            .args(mode)
            .args(["-F", config, path_str(&source)])
            .arg(format!("container@{node}:{remote}"))
            .output()
            .expect("scp runs");
        assert!(
            out.status.success(),
            "upload (legacy {legacy}): {}",
            stderr(&out)
        );
        let check = tb.ssh_as("container", &node, &format!("sha256sum '{remote}'"));
        assert_eq!(
            stdout(&check).split_whitespace().next(),
            Some(sha256(&data).as_str()),
            "the upload did not land in the container: {}",
            stderr(&check)
        );
        let back = local.0.join(format!("back-{legacy}"));
        let out = Command::new("scp")
            .args(mode)
            .args(["-F", config])
            .arg(format!("container@{node}:{remote}"))
            .arg(&back)
            .output()
            .expect("scp runs");
        assert!(
            out.status.success(),
            "download (legacy {legacy}): {}",
            stderr(&out)
        );
        assert!(
            std::fs::read(&back).ok() == Some(data.clone()),
            "download differs"
        );
    }
}

/// `sftp -b -` with `batch` on stdin.
fn sftp(tb: &Testbed, node: &str, batch: &str) -> Output {
    let mut command = Command::new("sftp");
    command
        .arg("-F")
        .arg(tb.ssh_config())
        .args(["-b", "-"])
        .arg(format!("container@{node}"));
    common::run_with_stdin(command, batch)
}

#[test]
fn sftp_works_in_a_container_with_sftp_server() {
    let tb = testbed();
    let (node, _, _nodes) = debian_like(&tb);
    let local = LocalDir::new(&tb);
    let data = noise(300_000, 13);
    let source = local.file("source", &data);
    let back = local.0.join("back");
    let remote = format!("/tmp/{}", unique("sftp"));
    let out = sftp(
        &tb,
        &node,
        &format!(
            "put {} {remote}\nls -l {remote}\nget {remote} {}\n",
            path_str(&source),
            path_str(&back)
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("300000"), "{}", stdout(&out));
    assert!(
        std::fs::read(&back).ok() == Some(data.clone()),
        "get differs"
    );
    let check = tb.ssh_as("container", &node, &format!("sha256sum {remote}"));
    assert_eq!(
        stdout(&check).split_whitespace().next(),
        Some(sha256(&data).as_str())
    );
}

#[test]
fn sftp_and_scp_explain_an_image_without_their_server() {
    let tb = testbed();
    let scratch = scratch(&tb, State::Busybox);
    let node = &scratch.node;
    let out = sftp(&tb, node, "ls /\n");
    assert!(!out.status.success());
    let expected = format!("rdsh: no sftp-server in container \"container\" on {node}");
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));

    let local = LocalDir::new(&tb);
    let source = local.file("source", b"x\n");
    let out = Command::new("scp")
        .args(["-O", "-F", path_str(&tb.ssh_config()), path_str(&source)])
        .arg(format!("container@{node}:/tmp/x"))
        .output()
        .expect("scp runs");
    assert!(!out.status.success());
    let expected = format!("rdsh: no scp in container \"container\" on {node}");
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    // scp over sftp fails too, without hanging (its messages are the client's own).
    let out = Command::new("scp")
        .args(["-F", path_str(&tb.ssh_config()), path_str(&source)])
        .arg(format!("container@{node}:/tmp/x"))
        .output()
        .expect("scp runs");
    assert!(!out.status.success(), "{}", stderr(&out));
}

#[test]
fn no_container_is_one_clear_line_and_status_125() {
    let tb = testbed();
    let scratch = scratch(&tb, State::Absent);
    let node = &scratch.node;
    let out = tb.ssh_as("container", node, "true");
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out),
        format!(
            "rdsh: no container named \"container\" on {node}: deploy one first (baleine-deploy)\n"
        )
    );
    // sshd drops the sftp subsystem's stderr: sftp must still say it.
    let out = sftp(&tb, node, "ls\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("rdsh: no container named \"container\" on {node}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_stopped_container_is_named_with_its_state() {
    let tb = testbed();
    let scratch = scratch(&tb, State::Exited);
    let node = &scratch.node;
    let out = tb.ssh_as("container", node, "true");
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out),
        format!(
            "rdsh: the container \"container\" on {node} is not running (state: exited, exit code 3)\n"
        )
    );
}

#[test]
fn an_unreachable_docker_is_reported() {
    let tb = testbed();
    let scratch = scratch(&tb, State::Absent);
    let node = &scratch.node;
    let _stopped = tb.stop(&format!("{node}/docker"));
    let out = tb.ssh_as("container", node, "true");
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "rdsh: cannot reach Docker on {node}: Cannot connect to the Docker daemon"
        )) && err.lines().count() == 1,
        "{err}"
    );
}

/// A terminal logged in as `container@node` with the user's TERM and LANG.
fn login(tb: &Testbed, node: &str) -> Terminal {
    let ssh = format!(
        "env TERM=xterm-256color LANG=C.UTF-8 ssh -F {} -tt -o SendEnv=LANG container@{node}; \
         echo ssh-exit=$?; sleep 600",
        path_str(&tb.ssh_config())
    );
    Terminal::start(tb, &ssh)
}

#[test]
fn an_interactive_login_is_bash_on_a_terminal_of_the_users_kind() {
    let tb = testbed();
    let (node, _, _nodes) = debian_like(&tb);
    let terminal = login(&tb, &node);
    terminal.type_line(r#"echo "tty=$(tty) term=$TERM lang=$LANG bash=${BASH_VERSION:+yes}"; echo "size=$(stty size)"; echo done-$((6*7))"#);
    let screen = terminal.wait_for("done-42", 20);
    assert!(
        screen.contains("tty=/dev/pts/")
            && screen.contains("term=xterm-256color lang=C.UTF-8 bash=yes"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("size={}", terminal.size())),
        "{screen}"
    );

    // The window size follows the user's terminal.
    let before = terminal.size();
    terminal.run(&["resize-window", "-t", "t", "-x", "90", "-y", "20"]);
    assert_ne!(terminal.size(), before, "tmux did not resize");
    // The new size travels as SIGWINCH through ssh and docker: ask until the
    // container's terminal has it.
    let mut asked = 0;
    wait_until("the container's terminal resized", 20, || {
        asked += 1;
        terminal.type_line(&format!(
            "echo resized=$(stty size) asked-$((1000+{asked}))"
        ));
        terminal.wait_for(&format!("asked-{}", 1000 + asked), 20);
        terminal
            .screen()
            .contains(&format!("resized={}", terminal.size()))
    });

    // Ctrl-C reaches the program in the container.
    terminal.type_line("sleep 6011");
    wait_until("sleep 6011 running in the container", 20, || {
        !processes("^sleep 6011$").is_empty()
    });
    terminal.run(&["send-keys", "-t", "t", "C-c"]);
    wait_until("sleep 6011 gone", 60, || {
        processes("^sleep 6011$").is_empty()
    });
    terminal.type_line("echo after-$((1+1))");
    terminal.wait_for("after-2", 20);

    terminal.type_line("exit 5");
    terminal.wait_for("ssh-exit=5", 20);
}

#[test]
fn a_command_on_a_terminal_sees_the_terminal_from_its_first_instant() {
    let tb = testbed();
    let (node, _, _nodes) = debian_like(&tb);
    let terminal = Terminal::start(
        &tb,
        &format!(
            "ssh -F {} -tt container@{node} 'echo \"size=$(stty size) $(tty)\"'; echo ssh-exit=$?; sleep 600",
            path_str(&tb.ssh_config())
        ),
    );
    let screen = terminal.wait_for("ssh-exit=", 20);
    assert!(
        screen.contains(&format!("size={} /dev/pts/", terminal.size()))
            && screen.contains("ssh-exit=0"),
        "{screen}"
    );
}

#[test]
fn an_interactive_login_without_bash_gets_sh() {
    let tb = testbed();
    let scratch = scratch(&tb, State::Busybox);
    let terminal = login(&tb, &scratch.node);
    terminal.type_line(r#"echo "shell=${BASH_VERSION:-sh} tty=$(tty)"; echo done-$((6*7))"#);
    let screen = terminal.wait_for("done-42", 20);
    assert!(screen.contains("shell=sh tty=/dev/pts/"), "{screen}");
    terminal.type_line("exit");
    terminal.wait_for("ssh-exit=0", 20);
}

#[test]
fn rdsh_takes_only_what_sshd_passes() {
    let run = |args: &[&str]| Command::new(RDSH).args(args).output().expect("rdsh runs");
    let out = run(&["--version"]);
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(0), format!("rdsh {}\n", env!("CARGO_PKG_VERSION")))
    );
    for args in [
        &["-l"][..],
        &["-c"],
        &["-c", "true", "extra"],
        &["--container", "x"],
    ] {
        let out = run(args);
        // rdsh's own failure: 125, which no command's status is taken for.
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("rdsh: ") && err.contains("usage: rdsh [-c COMMAND]"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_environment_cannot_point_rdsh_at_another_container_or_engine() {
    let tb = testbed();
    let (node, hostname, _nodes) = debian_like(&tb);
    // As sshd would start it on the node (in the node's mount namespace,
    // where /etc/baleine is the node's), plus variables a user might try:
    // the engine comes from the node's baleine.conf, not from DOCKER_HOST.
    let sshd = std::fs::read_to_string(tb.dir.join(format!("pids/{node}.sshd"))).unwrap();
    // (The user's ~/.docker/config.json is out of play too: a unit test of
    // jobs::rdsh, since the testbed's DOCKER names its engine with -H,
    // which the docker CLI prefers to any context.)
    let out = Command::new("nsenter")
        .args(["-t", sshd.trim(), "-m", "--", RDSH, "-c", "hostname"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("DOCKER_CONTEXT", "elsewhere")
        .env("BALEINE_CONTAINER_NAME", "elsewhere")
        .env("BALEINE_DOCKER", "false")
        .env("BALEINE_CONFIG", "/nonexistent/baleine.conf")
        .env("CONTAINER_NAME", "elsewhere")
        .stdin(Stdio::null())
        .output()
        .expect("rdsh runs");
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(0), format!("{hostname}\n")),
        "{}",
        stderr(&out)
    );
}

/// A scratch root for `make install-node DESTDIR=…`, removed on drop.
struct ScratchRoot(PathBuf);

impl ScratchRoot {
    fn new(files: &[(&str, &str)]) -> ScratchRoot {
        let root = std::env::temp_dir().join(unique("install-node"));
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("scratch dirs");
            std::fs::write(path, text).expect("scratch file");
        }
        ScratchRoot(root)
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.0.join(path)).unwrap_or_default()
    }

    fn install_node(&self) -> Output {
        let mut make = Command::new("make");
        make.args(["-C", env!("CARGO_MANIFEST_DIR"), "install-node"])
            .arg(format!("DESTDIR={}", self.0.display()))
            .arg(format!("RDSH={RDSH}"));
        // Neither the caller's baleine settings nor an outer make may leak in.
        for (key, _) in std::env::vars() {
            if key.starts_with("BALEINE_") || key.starts_with("MAKE") || key == "MFLAGS" {
                make.env_remove(key);
            }
        }
        make.output().expect("make runs")
    }

    fn lines_like(&self, path: &str, start: &str) -> Vec<String> {
        self.read(path)
            .lines()
            .filter(|line| line.starts_with(start))
            .map(String::from)
            .collect()
    }
}

impl Drop for ScratchRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n";
const SHADOW: &str = "root:*:19000:0:99999:7:::\n";

#[test]
fn make_install_node_twice_sets_a_node_up_once() {
    let root = ScratchRoot::new(&[
        ("etc/passwd", PASSWD),
        ("etc/shadow", SHADOW),
        ("etc/group", "root:x:0:\ndocker:x:998:\n"),
        ("etc/gshadow", "root:*::\ndocker:!::\n"),
        (
            "etc/shells",
            "# /etc/shells: valid login shells\n/bin/sh\n/bin/bash",
        ),
        (
            "etc/docker/daemon.json",
            r#"{"log-level": "warn", "insecure-registries": ["other.lan:5000"], "runtimes": {"x": {"path": "/x"}}}"#,
        ),
        (
            "etc/baleine/baleine.conf",
            "SAVE_URL = \"repo.lab\" # the gateway\nSAVE_PORT = 5000\n",
        ),
    ]);
    for run in 1..=2 {
        let out = root.install_node();
        assert!(out.status.success(), "run {run}: {}", stderr(&out));
        // Kept, but a runtime may not honour --privileged: said.
        assert!(
            stderr(&out).contains("sets \"runtimes\""),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        root.read("etc/shells"),
        "# /etc/shells: valid login shells\n/bin/sh\n/bin/bash\n/bin/rdsh\n"
    );
    assert_eq!(
        root.lines_like("etc/passwd", "container:"),
        ["container:x:1000:1000::/home/container:/bin/rdsh"]
    );
    let docker = root.lines_like("etc/group", "docker:");
    assert_eq!(docker, ["docker:x:998:container"]);
    let shadow = root.lines_like("etc/shadow", "container:");
    assert!(
        shadow.len() == 1 && shadow[0].starts_with("container:*:"),
        "{shadow:?}"
    );
    assert!(root.0.join("home/container").is_dir());
    assert_eq!(
        root.read("etc/ssh/sshd_config.d/baleine-rdsh.conf"),
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/rdsh/sshd-container.conf"
        ))
        .unwrap(),
        "the sshd drop-in is installed"
    );
    assert!(
        std::fs::read(root.0.join("bin/rdsh")).ok() == std::fs::read(RDSH).ok(),
        "bin/rdsh is not the build"
    );
    let daemon: serde_json::Value =
        serde_json::from_str(&root.read("etc/docker/daemon.json")).expect("daemon.json is JSON");
    assert_eq!(
        daemon,
        serde_json::json!({
            "log-level": "warn",
            "runtimes": {"x": {"path": "/x"}},
            "insecure-registries": ["other.lan:5000", "repo.lab:5000"],
            "registry-mirrors": ["http://repo.lab:81"],
        })
    );
}

#[test]
fn make_install_node_brings_an_existing_user_to_rdsh_with_r2lab_defaults() {
    let root = ScratchRoot::new(&[
        (
            "etc/passwd",
            &format!("{PASSWD}container:x:1001:1001::/home/container:/bin/bash\n"),
        ),
        ("etc/shadow", &format!("{SHADOW}container:!:19000::::::\n")),
        ("etc/group", "root:x:0:\ncontainer:x:1001:\n"),
        ("etc/gshadow", "root:*::\ncontainer:!::\n"),
    ]);
    let out = root.install_node();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        root.lines_like("etc/passwd", "container:"),
        ["container:x:1001:1001::/home/container:/bin/rdsh"]
    );
    let docker = root.lines_like("etc/group", "docker:");
    assert!(
        docker.len() == 1 && docker[0].ends_with(":container"),
        "{docker:?}"
    );
    assert!(root.lines_like("etc/shadow", "container:")[0].starts_with("container:*:"));
    assert_eq!(root.read("etc/shells"), "/bin/rdsh\n");
    let daemon: serde_json::Value =
        serde_json::from_str(&root.read("etc/docker/daemon.json")).expect("daemon.json is JSON");
    assert_eq!(
        daemon,
        serde_json::json!({
            "insecure-registries": ["faraday.repo"],
            "registry-mirrors": ["http://faraday.repo:81"],
        })
    );
}

#[test]
fn a_command_ends_when_its_session_ends_with_or_without_a_terminal() {
    let tb = testbed();
    let (node, _, _nodes) = debian_like(&tb);
    for (pattern, options) in [("^sleep 3014$", &[][..]), ("^sleep 3015$", &["-tt"][..])] {
        let command = pattern.trim_matches(['^', '$']);
        let mut ssh = tb
            .ssh_command("container", &node, options)
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh runs");
        common::wait_until(&format!("{command} running"), 60, || {
            common::processes(pattern).len() == 1
        });
        // The user's connection drops.
        ssh.kill().unwrap();
        ssh.wait().unwrap();
        common::wait_until(&format!("{command} stopped with its session"), 60, || {
            common::processes(pattern).is_empty()
        });
    }
}

#[test]
fn make_install_node_joins_an_existing_container_group_and_puts_our_mirror_first() {
    let root = ScratchRoot::new(&[
        ("etc/passwd", PASSWD),
        ("etc/shadow", SHADOW),
        ("etc/group", "root:x:0:\ncontainer:x:1500:\n"),
        ("etc/gshadow", "root:*::\ncontainer:!::\n"),
        (
            "etc/docker/daemon.json",
            r#"{"registry-mirrors": ["http://other.lan:5000"], "hosts": ["unix:///x.sock"]}"#,
        ),
    ]);
    let out = root.install_node();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        root.lines_like("etc/passwd", "container:"),
        ["container:x:1000:1500::/home/container:/bin/rdsh"]
    );
    let daemon: serde_json::Value =
        serde_json::from_str(&root.read("etc/docker/daemon.json")).expect("daemon.json is JSON");
    assert_eq!(
        daemon["registry-mirrors"],
        serde_json::json!(["http://faraday.repo:81", "http://other.lan:5000"])
    );
    assert!(
        stderr(&out).contains("sets \"hosts\""),
        "no warning about hosts: {}",
        stderr(&out)
    );
    // The binary is replaced by a rename: no temporary file is left beside it.
    let beside: Vec<_> = std::fs::read_dir(root.0.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, ["rdsh"]);
}

/// An sshd_config that does not include sshd_config.d would leave the
/// container user's fence out: install-node says so.
#[test]
fn make_install_node_warns_when_sshd_would_not_read_its_drop_in() {
    for (config, warned) in [
        ("Port 22\nUsePAM yes\n", true),
        ("Include /etc/ssh/sshd_config.d/*.conf\nPort 22\n", false),
    ] {
        let root = ScratchRoot::new(&[
            ("etc/passwd", PASSWD),
            ("etc/shadow", SHADOW),
            ("etc/group", "root:x:0:\n"),
            ("etc/gshadow", "root:*::\n"),
            ("etc/ssh/sshd_config", config),
        ]);
        let out = root.install_node();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stderr(&out).contains("is not in effect"),
            warned,
            "{config:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn make_install_node_refuses_a_port_given_twice() {
    let root = ScratchRoot::new(&[
        ("etc/passwd", PASSWD),
        ("etc/shadow", SHADOW),
        ("etc/group", "root:x:0:\n"),
        ("etc/gshadow", "root:*::\n"),
        (
            "etc/baleine/baleine.conf",
            "SAVE_URL = repo.lab:5000\nSAVE_PORT = 5000\n",
        ),
    ]);
    let out = root.install_node();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("give the port once"),
        "{}",
        stderr(&out)
    );
}

/// Every session of the container user goes through rdsh, as sshd itself
/// says (`sshd -T`): a login, a command, and a subsystem, even sftp served
/// in-process (internal-sftp, as the testbed's nodes serve it), which a
/// login shell alone would not fence. The sftp tests above prove the files
/// land in the container, not on the node.
#[test]
fn sshd_forces_every_session_of_the_container_user_through_rdsh() {
    let tb = testbed();
    let node = &tb.nodes[0];
    let config = tb.dir.join("n").join(node).join("sshd_config");
    let out = Command::new("/usr/sbin/sshd")
        .arg("-T")
        .arg("-f")
        .arg(&config)
        .args(["-C", &format!("user=container,host={node},addr=127.0.0.1")])
        .output()
        .expect("sshd -T runs");
    let effective = stdout(&out).to_lowercase();
    assert!(
        effective.contains("\nforcecommand /bin/rdsh\n"),
        "{effective}"
    );
    assert!(
        effective.contains("\nsubsystem sftp internal-sftp"),
        "{effective}"
    );
    // Root is not forced: the fleet's own sessions are plain ssh.
    let out = Command::new("/usr/sbin/sshd")
        .arg("-T")
        .arg("-f")
        .arg(&config)
        .args(["-C", &format!("user=root,host={node},addr=127.0.0.1")])
        .output()
        .expect("sshd -T runs");
    assert!(stdout(&out)
        .to_lowercase()
        .contains("\nforcecommand none\n"));
    // What the client asked for still runs, in the container.
    let out = tb.ssh_as(
        "container",
        node,
        "cat /etc/hostname; echo $SSH_ORIGINAL_COMMAND",
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_container_user_can_forward_nothing_not_even_the_docker_socket() {
    let tb = testbed();
    let node = tb.nodes[0].clone();
    // A remote forward is refused at once by sshd (the drop-in).
    let out = tb
        .ssh_command(
            "container",
            &node,
            &[
                "-o",
                "ExitOnForwardFailure=yes",
                "-R",
                "0:127.0.0.1:9",
                "-N",
            ],
        )
        .stdin(Stdio::null())
        .output()
        .expect("ssh runs");
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("forwarding failed"),
        "{}",
        stderr(&out)
    );
    // The attack the drop-in exists for: the node's docker socket brought
    // to the gateway through the container user's session. Root's session
    // (no drop-in for root) shows the same forward reaching the engine.
    let root = forwarded_docker_answer(&tb, "root", &node);
    assert!(
        String::from_utf8_lossy(&root).starts_with("HTTP/1."),
        "root's forward did not reach the engine: {}",
        String::from_utf8_lossy(&root)
    );
    let container = forwarded_docker_answer(&tb, "container", &node);
    assert!(
        container.is_empty(),
        "the docker API answered through the container user's forward: {}",
        String::from_utf8_lossy(&container)
    );
}

/// What the node's docker socket answers to GET /version through
/// `ssh -L` as `user`: nothing when sshd refuses the forward.
fn forwarded_docker_answer(tb: &Testbed, user: &str, node: &str) -> Vec<u8> {
    let engine = tb.dir.join(format!("n/{node}/docker.sock"));
    let local = tb.dir.join(unique("forwarded.sock"));
    let mut ssh = tb
        .ssh_command(
            user,
            node,
            &[
                "-N",
                "-L",
                &format!("{}:{}", local.display(), engine.display()),
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !local.exists() {
        assert!(
            Instant::now() < deadline,
            "ssh never listened on {}",
            local.display()
        );
        assert!(ssh.try_wait().unwrap().is_none(), "ssh -L exited early");
        thread::sleep(Duration::from_millis(20));
    }
    let mut stream = std::os::unix::net::UnixStream::connect(&local).expect("connect");
    stream
        .write_all(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    let _ = ssh.kill();
    let _ = ssh.wait();
    let _ = std::fs::remove_file(&local);
    answer
}
