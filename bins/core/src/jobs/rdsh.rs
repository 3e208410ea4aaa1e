//! rdsh's logic: from the arguments sshd gives a login shell to the one `docker exec` that runs the session in the node's managed container.
//!
//! sshd runs the `container` user's shell as `rdsh` (argv\[0\] `-rdsh` for a
//! login) or as `rdsh -c STRING` (a command, scp, rsync, or the sftp
//! subsystem). rdsh checks that the managed container runs, then replaces
//! itself with `docker exec`, so the TTY, window size, signals, stdin and exit
//! status all belong to docker and the program in the container.

use crate::domain::config::{self, Config};
use crate::framework::UsageError;
use argh::{ArgsInfo, FromArgs};
use std::ffi::{OsStr, OsString};
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const USAGE: &str =
    "usage: rdsh [-c COMMAND] (the container user's login shell: ssh container@NODE [COMMAND])";

/// A healthy daemon answers rdsh's checks in well under a second; one that
/// does not answer in this long would leave the user's ssh session hanging.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where sftp-server lives in common images, tried in turn when the path in
/// the node's sshd configuration is not there (Debian, Alpine, Fedora, others).
const SFTP_SERVERS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
];

/// What rdsh was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Version,
    Run(Mode),
}

/// The two ways sshd (or login, su) runs a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A login session: the container's own shell.
    Interactive,
    /// `-c STRING`: STRING run by the container's `sh`, exactly as typed.
    Command(OsString),
}

/// The container user's `ForceCommand` (rdsh/sshd-container.conf): every
/// session of that user, whatever its shell, command or subsystem
/// (`internal-sftp` included), runs rdsh; what the client asked for is in
/// SSH_ORIGINAL_COMMAND.
pub const FORCED: &str = "/bin/rdsh";

/// What a forced session asked for: a login without a command, else the
/// command (an `internal-sftp` subsystem is the sftp server's).
pub fn forced_mode(original: Option<OsString>) -> Mode {
    match original {
        None => Mode::Interactive,
        Some(command)
            if command == "internal-sftp"
                || command
                    .to_str()
                    .is_some_and(|c| c.starts_with("internal-sftp ")) =>
        {
            let rest = command.to_string_lossy()["internal-sftp".len()..].to_owned();
            Mode::Command(format!("{SFTP_SERVER}{rest}").into())
        }
        Some(command) => Mode::Command(command),
    }
}

/// The sftp server a container runs for sshd's in-process one.
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// Parses the arguments after argv\[0\]; argv\[0\] itself (`rdsh`, `-rdsh`)
/// says nothing more. Only what sshd and login pass is accepted: anything
/// else is a mistake that should not half-work.
pub fn parse_args(args: &[OsString]) -> Result<Invocation, UsageError> {
    match args {
        [] => Ok(Invocation::Run(Mode::Interactive)),
        // --command is -c's long name in rdsh(1) (both come from RdshArgs).
        [flag, command] if flag == "-c" || flag == "--command" => {
            Ok(Invocation::Run(Mode::Command(command.clone())))
        }
        [flag] if flag == "--version" => Ok(Invocation::Version),
        [flag] if flag == "-c" => Err(UsageError(format!("-c needs a command; {USAGE}"))),
        [flag, ..] if flag == "-c" => Err(UsageError(format!(
            "-c takes one command string, not {}; {USAGE}",
            args.len() - 1
        ))),
        [first, ..] => Err(UsageError(format!(
            "unexpected argument {:?}; {USAGE}",
            first.to_string_lossy()
        ))),
    }
}

/// What `docker inspect` says about the managed container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    /// Exists but cannot take a `docker exec` (exited, created, paused, ...).
    NotRunning {
        status: String,
        exit_code: Option<i64>,
    },
    Missing,
    /// The daemon could not be asked; docker's own words, or ours.
    DockerUnreachable(String),
}

/// Interprets `docker inspect --format '{{.State.Status}} {{.State.ExitCode}}'`.
pub fn container_state(success: bool, stdout: &[u8], stderr: &[u8]) -> ContainerState {
    if !success {
        let stderr = String::from_utf8_lossy(stderr);
        if stderr.contains("No such container") || stderr.contains("No such object") {
            return ContainerState::Missing;
        }
        let line =
            first_line(stderr.as_bytes()).unwrap_or("docker inspect failed without a message");
        return ContainerState::DockerUnreachable(line.to_owned());
    }
    let stdout = String::from_utf8_lossy(stdout);
    let mut words = stdout.split_whitespace();
    match (words.next(), words.next()) {
        (Some("running"), _) => ContainerState::Running,
        (status, exit_code) => ContainerState::NotRunning {
            status: status.unwrap_or("unknown").to_owned(),
            exit_code: exit_code.and_then(|code| code.parse().ok()),
        },
    }
}

/// The exit status of the sftp-server probe when the container has none.
const SFTP_SERVER_MISSING: i32 = 3;

impl Mode {
    /// sshd's sftp subsystem (`-c /usr/lib/openssh/sftp-server [ARGS]`): the
    /// server's path and arguments. sshd drops a subsystem's stderr, so in
    /// this mode only an answer in the sftp protocol reaches the user.
    pub fn sftp_server(&self) -> Option<(String, Vec<String>)> {
        let Mode::Command(command) = self else {
            return None;
        };
        let words = shell_words::split(command.to_str()?).ok()?;
        let (first, rest) = words.split_first()?;
        (Path::new(first).file_name() == Some(OsStr::new("sftp-server")))
            .then(|| (first.clone(), rest.to_vec()))
    }
}

/// `scp -t`/`scp -f` (scp -O) or `rsync --server`: a program that a client
/// starts through the shell, recognized so that a container without it fails
/// with a sentence rather than "sh: not found" amid the client's protocol.
fn transfer_program(command: &OsStr) -> Option<&'static str> {
    let words = shell_words::split(command.to_str()?).ok()?;
    match words.first()?.as_str() {
        "scp" => Some("scp"),
        "rsync" => Some("rsync"),
        _ => None,
    }
}

/// Everything about where rdsh runs that its docker commands depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// DOCKER from the configuration, split into words.
    pub docker: Vec<String>,
    pub container: String,
    /// The node's name, for messages.
    pub host: String,
    /// Whether stdin is a terminal: `docker exec -t` needs one.
    pub tty: bool,
    /// The terminal's rows and columns, when stdin is a terminal with a size.
    pub size: Option<(u16, u16)>,
    /// The user's terminal type and locale, for the programs in the container.
    pub env: Vec<(OsString, OsString)>,
}

impl Session {
    /// The session of this process: configuration, hostname, stdin, environment.
    pub fn here(config: &Config) -> Session {
        let host = nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "this node".to_owned());
        Session {
            docker: config.docker.clone(),
            container: config.container_name.clone(),
            host,
            tty: io::stdin().is_terminal(),
            size: crate::framework::output::window_size(0).filter(|(rows, _)| *rows > 0),
            env: passed_env(std::env::vars_os()),
        }
    }

    /// `docker inspect` of the managed container only (`--type container`:
    /// an image of the same name must not answer).
    pub fn inspect_argv(&self) -> Vec<String> {
        let mut argv = self.docker.clone();
        argv.extend(
            [
                "inspect",
                "--type",
                "container",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                &self.container,
            ]
            .map(String::from),
        );
        argv
    }

    /// Asks the daemon about the managed container, giving up after `timeout`.
    pub fn container_state(&self, timeout: Duration) -> ContainerState {
        match run(&self.inspect_argv(), timeout) {
            Ok(output) => container_state(output.success, &output.stdout, &output.stderr),
            Err(reason) => ContainerState::DockerUnreachable(reason),
        }
    }

    /// The line to print when the session cannot start, or `None` when it can.
    pub fn problem(&self, state: &ContainerState) -> Option<String> {
        let (container, host) = (&self.container, &self.host);
        match state {
            ContainerState::Running => None,
            ContainerState::Missing => Some(format!(
                "no container named {container:?} on {host}: deploy one first (baleine-deploy)"
            )),
            ContainerState::NotRunning { status, exit_code } => {
                let code = match (status.as_str(), exit_code) {
                    ("exited" | "dead", Some(code)) => format!(", exit code {code}"),
                    _ => String::new(),
                };
                Some(format!(
                    "the container {container:?} on {host} is not running (state: {status}{code})"
                ))
            }
            ContainerState::DockerUnreachable(reason) => {
                Some(format!("cannot reach Docker on {host}: {reason}"))
            }
        }
    }

    /// What rdsh does for `mode`: check that the container runs, then
    /// normally replace itself with one `docker exec`. The sftp subsystem first
    /// looks for sftp-server in the container (one more, short `docker exec`),
    /// since the answer decides what to run and how to say it is missing.
    pub fn plan(&self, mode: &Mode, timeout: Duration) -> Plan {
        if let Some(problem) = self.problem(&self.container_state(timeout)) {
            return Plan::Fail(problem);
        }
        if let Some((path, args)) = mode.sftp_server() {
            return match self.find_sftp_server(&path, timeout) {
                Ok(found) => {
                    let mut program = vec![OsString::from(found)];
                    program.extend(args.into_iter().map(OsString::from));
                    Plan::Exec(self.exec_argv(&program))
                }
                Err(problem) => Plan::Fail(problem),
            };
        }
        Plan::Exec(self.exec_argv(&self.in_container(mode)))
    }

    /// What runs in the container for `mode` (except the sftp subsystem): the container's `sh`.
    pub fn in_container(&self, mode: &Mode) -> Vec<OsString> {
        // Daemons older than API 1.42 size an exec's terminal only once it
        // runs: a program that starts at once (`ssh -t container@NODE 'stty
        // size'`, or typed-ahead input) would see 0x0. So the terminal gets
        // the user's size first, where the image has stty.
        let resize = match self.size {
            Some((rows, cols)) if self.tty => format!("stty rows {rows} cols {cols} 2>/dev/null; "),
            _ => String::new(),
        };
        let sh = |script: String| vec!["sh".into(), "-c".into(), script.into()];
        match mode {
            // Non-login, as `docker exec` shells are: a login profile (Debian's
            // /etc/profile) would reset the PATH the image sets.
            Mode::Interactive => sh(format!(
                "{resize}if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"
            )),
            Mode::Command(command) => match transfer_program(command) {
                Some(program) => sh(resize + &self.transfer_script(program, command)),
                // `--`: a command such as `--version` is the command, not an option of sh.
                None if resize.is_empty() => {
                    vec!["sh".into(), "-c".into(), "--".into(), command.clone()]
                }
                // The command still reaches a `sh -c` as one untouched word.
                None => {
                    let mut argv = sh(resize + "exec sh -c -- \"$1\"");
                    argv.extend(["sh".into(), command.clone()]);
                    argv
                }
            },
        }
    }

    /// The `docker exec` that runs `program` (its argv) in the managed container.
    /// This session's mark on the processes it starts in the container.
    pub fn mark(&self) -> String {
        format!("BALEINE_RDSH={}", std::process::id())
    }

    /// The docker exec that stops, in the container, this session's processes.
    pub fn cleanup_argv(&self) -> Vec<String> {
        let kill = crate::remote::protocol::kill_tagged(&[self.mark()]);
        let mut argv = self.docker.clone();
        argv.extend([
            "exec".into(),
            self.container.clone(),
            "sh".into(),
            "-c".into(),
            kill,
        ]);
        argv
    }

    pub fn exec_argv(&self, program: &[OsString]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = self.docker.iter().map(OsString::from).collect();
        argv.extend(["exec", "-i"].map(OsString::from));
        if self.tty {
            argv.push("-t".into());
            // Ctrl-P Ctrl-Q would detach and leave the command running: no
            // key sequence anyone types detaches (docker has no "never").
            argv.push(DETACH_KEYS.into());
        }
        // This session's mark, by which rdsh stops its processes when the
        // session ends first (see `supervise`).
        argv.extend([OsString::from("-e"), OsString::from(self.mark())]);
        for (name, value) in &self.env {
            let mut pair = name.clone();
            pair.push("=");
            pair.push(value);
            argv.extend([OsString::from("-e"), pair]);
        }
        // docker stops reading options at the container name, which
        // CONTAINER_NAME's validation keeps from starting with '-'.
        argv.push(self.container.clone().into());
        argv.extend(program.iter().cloned());
        argv
    }

    /// A `docker exec` that prints the first sftp-server found among `path`
    /// (from the node's sshd configuration) and the usual places in images.
    pub fn sftp_probe_argv(&self, path: &str) -> Vec<String> {
        let mut paths = vec![path.to_owned()];
        paths.extend(
            SFTP_SERVERS
                .iter()
                .filter(|known| **known != path)
                .map(|known| known.to_string()),
        );
        let script = format!(
            "for p in {}; do if [ -f \"$p\" ] && [ -x \"$p\" ]; then echo \"$p\"; exit 0; fi; done; exit {SFTP_SERVER_MISSING}",
            crate::remote::quote::quote(&paths)
        );
        let mut argv = self.docker.clone();
        argv.extend(["exec", &self.container, "sh", "-c", &script].map(String::from));
        argv
    }

    fn find_sftp_server(&self, path: &str, timeout: Duration) -> Result<String, String> {
        let (container, host) = (&self.container, &self.host);
        let output = run(&self.sftp_probe_argv(path), timeout)
            .map_err(|reason| format!("cannot reach Docker on {host}: {reason}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        match (output.code, stdout.lines().next()) {
            (Some(0), Some(found)) if !found.is_empty() => Ok(found.to_owned()),
            (Some(SFTP_SERVER_MISSING), _) => Err(format!(
                "no sftp-server in container {container:?} on {host}: \
                 sftp and scp need one in the image (Debian: openssh-sftp-server)"
            )),
            _ => Err(format!(
                "cannot look for sftp-server in container {container:?} on {host}: {}",
                first_line(&output.stderr).unwrap_or("docker exec failed without a message")
            )),
        }
    }

    /// A script that runs a transfer program's command as typed, or says
    /// clearly that the container lacks the program (exit 127, as a shell
    /// does for a missing command).
    fn transfer_script(&self, program: &str, command: &OsStr) -> String {
        let hint = match program {
            "scp" => "scp -O needs it in the image (Debian: openssh-client)",
            _ => "it must be installed in the image",
        };
        let missing = format!(
            "rdsh: no {program} in container {:?} on {}: {hint}",
            self.container, self.host
        );
        format!(
            "command -v {program} >/dev/null 2>&1 || {{ echo {} >&2; exit 127; }}; exec sh -c -- {}",
            crate::remote::quote::quote_word(&missing),
            crate::remote::quote::quote_word(&command.to_string_lossy())
        )
    }
}

/// What rdsh will do, once it has asked Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Replace rdsh with this command line.
    Exec(Vec<OsString>),
    /// Say this (one line) and exit 1.
    Fail(String),
}

/// The caller's variables that describe the user's terminal and language
/// (what sshd's AcceptEnv lets through), which programs in the container
/// should see as on any machine. `docker exec` passes none of the caller's.
pub fn passed_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut passed: Vec<_> = vars
        .into_iter()
        .filter(|(name, _)| {
            let name = name.as_bytes();
            matches!(name, b"TERM" | b"LANG" | b"LANGUAGE")
                || (name.starts_with(b"LC_") && !name.contains(&b'='))
        })
        .collect();
    passed.sort();
    passed
}

/// Detach keys no one types: eight NULs (Ctrl-@).
const DETACH_KEYS: &str = "--detach-keys=ctrl-@,ctrl-@,ctrl-@,ctrl-@,ctrl-@,ctrl-@,ctrl-@,ctrl-@";

/// Session ends rdsh watches for while docker runs the session.
static HANGUP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_hangup(_: nix::libc::c_int) {
    HANGUP.store(true, std::sync::atomic::Ordering::SeqCst);
}

extern "C" fn on_terminal_signal(_: nix::libc::c_int) {}

/// Runs the session's `docker exec` (`argv`) as a child and waits for it.
///
/// `docker exec` neither forwards a hangup nor stops the command when its
/// client goes: a command started through rdsh would outlive its ssh
/// session. So rdsh stays: when the session ends first (SIGHUP from a
/// closing terminal, SIGTERM, or sshd closing our output without a
/// terminal), it stops the docker client and, inside the container, every
/// process of this session (marked with -e BALEINE_RDSH=...). Ctrl-C and
/// window changes reach docker as before (same process group; rdsh's own
/// handlers do nothing, and are not inherited across exec).
fn supervise(argv: &[OsString], cleanup: &[String]) -> ExitCode {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let quiet = SigAction::new(
        SigHandler::Handler(on_terminal_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    let hangup = SigAction::new(
        SigHandler::Handler(on_hangup),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handlers only store to an atomic, or do nothing.
    unsafe {
        for signal in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGWINCH] {
            let _ = sigaction(signal, &quiet);
        }
        for signal in [Signal::SIGHUP, Signal::SIGTERM] {
            let _ = sigaction(signal, &hangup);
        }
    }
    let Some((program, args)) = argv.split_first() else {
        return fail("empty docker command");
    };
    let mut child = match docker_command(program).args(args).spawn() {
        Ok(child) => child,
        Err(error) => {
            return fail(&format!(
                "cannot run {}: {error}",
                program.to_string_lossy()
            ));
        }
    };
    let terminal = io::stdin().is_terminal();
    let session_gone =
        || HANGUP.load(std::sync::atomic::Ordering::SeqCst) || (!terminal && output_closed());
    loop {
        match child.try_wait() {
            // The hangup reached docker too (same process group): the
            // session is over, whatever docker's status says.
            Ok(Some(_)) if session_gone() => {
                stop_session_in_container(cleanup);
                return ExitCode::from(129);
            }
            Ok(Some(status)) => {
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(CANNOT_START.into());
                return ExitCode::from(u8::try_from(code).unwrap_or(CANNOT_START));
            }
            Ok(None) => {}
            Err(error) => return fail(&format!("cannot wait for docker: {error}")),
        }
        let gone =
            HANGUP.load(std::sync::atomic::Ordering::SeqCst) || (!terminal && output_closed());
        if gone {
            let _ = child.kill();
            let _ = child.wait();
            stop_session_in_container(cleanup);
            return ExitCode::from(129);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether sshd has closed the other end of our stdout or stderr: the
/// session is over, though no signal says so without a terminal.
fn output_closed() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let mut fds = [
        PollFd::new(stdout.as_fd(), PollFlags::empty()),
        PollFd::new(stderr.as_fd(), PollFlags::empty()),
    ];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds.iter().any(|fd| {
            fd.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
        }),
        _ => false,
    }
}

/// Kills, inside the container, the processes of this session (marked
/// `BALEINE_RDSH=<mark>`): `cleanup` is the docker exec that runs a shell
/// there as the container's root, which finds them in /proc.
fn stop_session_in_container(cleanup: &[String]) {
    let _ = run(cleanup, DOCKER_TIMEOUT);
}

/// Environment variables that would point the docker CLI at another daemon,
/// context, client configuration or certificates: a session's environment
/// is the user's, and the engine rdsh talks to is root's choice (DOCKER in
/// /etc/baleine/baleine.conf, e.g. `docker -H unix:///run/docker.sock`).
const DOCKER_CLIENT_VARS: &[&str] = &[
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS",
    "DOCKER_TLS_VERIFY",
    "DOCKER_API_VERSION",
    "DOCKER_DEFAULT_PLATFORM",
];

/// The docker CLI's configuration directory for rdsh: root's, under
/// /etc/baleine (absent by default). Without DOCKER_CONFIG the CLI would read
/// the user's ~/.docker/config.json, whose `currentContext` can name another
/// engine.
const DOCKER_CLIENT_CONFIG: &str = "/etc/baleine/docker-client";

/// A command for the docker CLI, without the variables the user could have
/// set to redirect it, and with root's client configuration, not the user's.
fn docker_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for var in DOCKER_CLIENT_VARS {
        command.env_remove(var);
    }
    command.env("DOCKER_CONFIG", DOCKER_CLIENT_CONFIG);
    command
}

/// What a short docker command printed.
struct Output {
    success: bool,
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `argv` without the user's stdin, which belongs to the session that
/// follows, and kills it after `timeout`: a daemon that does not answer must
/// not leave the user's ssh session hanging.
fn run(argv: &[String], timeout: Duration) -> Result<Output, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty docker command".to_owned());
    };
    let child = docker_command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(timeout) {
        Ok(Ok(output)) => Ok(Output {
            success: output.status.success(),
            code: output.status.code(),
            stdout: output.stdout,
            stderr: output.stderr,
        }),
        Ok(Err(error)) => Err(format!("{program}: {error}")),
        Err(_) => {
            // Not reaped yet (the thread is still waiting), so the pid is still ours.
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(format!("no answer within {} s", timeout.as_secs()))
        }
    }
}

/// The first non-blank line of a command's output, trimmed and kept short.
fn first_line(output: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(output).ok()?;
    let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
    Some(match line.char_indices().nth(300) {
        Some((end, _)) => &line[..end],
        None => line,
    })
}

/// Answers an sftp client with `message` when no sftp-server can: sshd drops
/// a subsystem's stderr, so the client would only say "Connection closed".
/// Speaks just enough of sftp version 3: VERSION for INIT, then a FAILURE
/// status carrying `message` for every request, which OpenSSH's sftp prints
/// (`realpath .: MESSAGE`) before giving up. Returns at the client's EOF.
pub fn refuse_sftp(mut input: impl Read, mut output: impl Write, message: &str) -> io::Result<()> {
    const INIT: u8 = 1;
    const VERSION: u8 = 2;
    const STATUS: u8 = 101;
    const FAILURE: u32 = 4;
    // sftp-server's own limit; anything larger is not an sftp client talking.
    const MAX_PACKET: usize = 256 * 1024;
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "not an sftp client");
    // Our messages are one line; the cap only keeps the length in a u32.
    let string = |text: &str| {
        let bytes = &text.as_bytes()[..text.len().min(4096)];
        let mut field = (bytes.len() as u32).to_be_bytes().to_vec();
        field.extend_from_slice(bytes);
        field
    };
    loop {
        let mut length = [0; 4];
        match input.read_exact(&mut length) {
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            result => result?,
        }
        let length = usize::try_from(u32::from_be_bytes(length)).map_err(|_| invalid())?;
        if length == 0 || length > MAX_PACKET {
            return Err(invalid());
        }
        let mut body = vec![0; length];
        input.read_exact(&mut body)?;
        let mut reply = Vec::new();
        match (body[0], body.get(1..5)) {
            (INIT, _) => {
                reply.push(VERSION);
                reply.extend(3u32.to_be_bytes());
            }
            (_, Some(id)) => {
                reply.push(STATUS);
                reply.extend(id);
                reply.extend(FAILURE.to_be_bytes());
                reply.extend(string(message));
                reply.extend(string(""));
            }
            (_, None) => return Err(invalid()),
        }
        let reply_length = u32::try_from(reply.len()).map_err(|_| invalid())?;
        output.write_all(&reply_length.to_be_bytes())?;
        output.write_all(&reply)?;
        output.flush()?;
    }
}

/// The login shell of the container user on R2Lab nodes: it puts whoever
/// logs in as container@fitNN inside the managed container running on that
/// node, as if the container were the machine. Without arguments it starts
/// the container's bash (else sh) on a terminal; with -c it runs the command
/// string there, stdin, stdout, stderr and exit status passing through, so
/// ssh commands, scp, sftp and rsync work.
#[derive(FromArgs, ArgsInfo)]
#[argh(
    example = "ssh container@fit03",
    example = "ssh container@fit03 'echo \"a  b\"; exit 7'",
    example = "tar c data | ssh container@fit03 'tar x -C /tmp'",
    note = "sshd starts rdsh as a login shell (argv[0] may start with -). The container \
            (CONTAINER_NAME) and the docker command with its engine address (DOCKER, e.g. \
            docker -H unix:///run/docker.sock) come from /etc/baleine/baleine.conf only: neither \
            arguments nor the environment (DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG...) can point \
            rdsh elsewhere. rdsh runs docker exec as its child: Ctrl-C, window size and the \
            terminal reach the real program, and when the session ends (the terminal hangs \
            up, or ssh closes the connection) rdsh stops the command in the container, so \
            nothing started through rdsh outlives its session; docker's detach keys are \
            disabled. What rdsh confines: a login lands in the \
            container, and make install-node's sshd drop-in (sshd_config.d/baleine-rdsh.conf) \
            refuses the container user every forwarding (TCP, Unix sockets such as docker.sock, \
            agent, X11, tunnels) and ~/.ssh/rc. What it does not: the container user is in the \
            docker group, so anything that reaches the node's docker socket is root on the node; \
            and root in a --privileged container (R2Lab's default run options) is root on the \
            node. rdsh is a convenience and a fence against mistakes, not a security boundary \
            against the user who reserved the node.",
    error_code(125, "rdsh's own failure, as docker's own failures are 125: no managed container, or it is not running, or docker is unreachable, or rdsh was started with arguments other than -c COMMAND (one line on stderr says which); any other status is the command's")
)]
pub struct RdshArgs {
    /// run this command string in the container with sh -c (what sshd does for ssh commands, scp, sftp and rsync)
    #[argh(option, arg_name = "COMMAND", short = 'c')]
    pub command: Option<String>,
}

/// The container is missing or stopped, Docker is unreachable, docker cannot
/// be run, or the node's configuration is broken: 125, as docker itself
/// says of its own failures, so a command's own status 1 means the command.
const CANNOT_START: u8 = 125;

/// rdsh's whole `main`: no logging and none of the tools' signal handling
/// (`supervise` has its own).
pub fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.len() == 1 && args[0] == "--help" {
        // The same text as rdsh(1): both come from RdshArgs.
        if let Err(help) = <RdshArgs as FromArgs>::from_args(&["rdsh"], &["--help"]) {
            let _ = write!(io::stdout(), "{}", help.output);
        }
        return ExitCode::SUCCESS;
    }
    let mode = match parse_args(&args) {
        // Forced by sshd (`rdsh -c /bin/rdsh`, or `/bin/rdsh` from another
        // login shell): what the client asked for.
        Ok(Invocation::Run(Mode::Command(command))) if command == FORCED => {
            forced_mode(std::env::var_os("SSH_ORIGINAL_COMMAND"))
        }
        Ok(Invocation::Run(Mode::Interactive))
            if std::env::var_os("SSH_ORIGINAL_COMMAND").is_some() =>
        {
            forced_mode(std::env::var_os("SSH_ORIGINAL_COMMAND"))
        }
        Ok(Invocation::Run(mode)) => mode,
        Ok(Invocation::Version) => {
            let _ = writeln!(io::stdout(), "rdsh {}", crate::framework::cli::VERSION);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = writeln!(io::stderr(), "rdsh: {error}");
            // rdsh's own failure, like any other: 125, never a status the
            // command could have returned (sh itself exits 2 on bad usage).
            return ExitCode::from(CANNOT_START);
        }
    };
    // The system file only, and no environment: neither BALEINE_* variables
    // nor the user's own files may point rdsh at another container or daemon.
    let (plan, cleanup) =
        match config::load_from(&[config::Source::optional(config::SYSTEM_CONFIG)], &|_| {
            None
        }) {
            Ok(config) => {
                let session = Session::here(&config);
                (session.plan(&mode, DOCKER_TIMEOUT), session.cleanup_argv())
            }
            Err(error) => (Plan::Fail(error.to_string()), Vec::new()),
        };
    match plan {
        Plan::Exec(argv) => supervise(&argv, &cleanup),
        Plan::Fail(problem) => {
            if mode.sftp_server().is_some() {
                // sshd drops a subsystem's stderr: say it in the sftp protocol.
                let answer = format!("rdsh: {problem}");
                let _ = refuse_sftp(io::stdin().lock(), io::stdout().lock(), &answer);
            }
            fail(&problem)
        }
    }
}

/// Says why the session cannot start (never panicking, unlike eprintln!,
/// when stderr is gone) and exits 125.
fn fail(problem: &str) -> ExitCode {
    let _ = writeln!(io::stderr(), "rdsh: {problem}");
    ExitCode::from(CANNOT_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docker_cli_gets_root_s_configuration_not_the_user_s() {
        let command = docker_command("docker");
        let envs: Vec<_> = command.get_envs().collect();
        // The user's ~/.docker/config.json may name another engine
        // (currentContext) when DOCKER holds no -H.
        assert!(envs.contains(&(
            OsStr::new("DOCKER_CONFIG"),
            Some(OsStr::new(DOCKER_CLIENT_CONFIG))
        )));
        for var in ["DOCKER_HOST", "DOCKER_CONTEXT"] {
            assert!(envs.contains(&(OsStr::new(var), None)), "{var} kept");
        }
    }
    use std::os::unix::ffi::OsStringExt;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn session(tty: bool) -> Session {
        Session {
            docker: vec!["docker".into()],
            container: "container".into(),
            host: "fit03".into(),
            tty,
            size: tty.then_some((24, 80)),
            env: vec![],
        }
    }

    /// The whole `docker exec` command line for `mode`, as text.
    /// The session's argv without its fences (the mark and the detach
    /// keys, which `the_session_is_marked_and_cannot_detach` checks).
    fn argv_for(session: &Session, mode: &Mode) -> Vec<String> {
        let mut argv = strings(&session.exec_argv(&session.in_container(mode)));
        argv.retain(|w| w != DETACH_KEYS);
        if let Some(at) = argv.iter().position(|w| w.starts_with("BALEINE_RDSH=")) {
            argv.drain(at - 1..=at);
        }
        argv
    }

    #[test]
    fn the_session_is_marked_and_cannot_detach() {
        let session = session(true);
        let argv = strings(&session.exec_argv(&[OsString::from("sh")]));
        let mark = argv
            .iter()
            .position(|w| w.starts_with("BALEINE_RDSH="))
            .unwrap();
        assert_eq!(argv[mark - 1], "-e");
        assert!(argv.contains(&DETACH_KEYS.to_owned()));
        let container = argv.iter().position(|w| w == "container").unwrap();
        assert!(
            mark < container,
            "options after the container name are the command's"
        );
        let cleanup = session.cleanup_argv();
        assert_eq!(cleanup[..4], ["docker", "exec", "container", "sh"]);
        assert!(
            cleanup[5].contains(&quote_word_of(&session.mark())),
            "{}",
            cleanup[5]
        );
    }

    fn quote_word_of(word: &str) -> String {
        crate::remote::quote::quote_word(word)
    }

    fn strings(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|word| word.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_forced_session_runs_what_the_client_asked_for() {
        assert_eq!(forced_mode(None), Mode::Interactive);
        assert_eq!(
            forced_mode(Some("uname -a".into())),
            Mode::Command("uname -a".into())
        );
        // sshd's in-process sftp server is the container's sftp-server.
        assert_eq!(
            forced_mode(Some("internal-sftp".into())),
            Mode::Command(SFTP_SERVER.into())
        );
        assert!(forced_mode(Some("internal-sftp -l INFO".into()))
            .sftp_server()
            .is_some());
    }

    #[test]
    fn sshd_invocations_are_understood() {
        assert_eq!(parse_args(&[]), Ok(Invocation::Run(Mode::Interactive)));
        assert_eq!(
            parse_args(&args(&["-c", "echo \"a  b\""])),
            Ok(Invocation::Run(Mode::Command("echo \"a  b\"".into())))
        );
        assert_eq!(
            parse_args(&args(&["-c", ""])),
            Ok(Invocation::Run(Mode::Command("".into())))
        );
        assert_eq!(parse_args(&args(&["--version"])), Ok(Invocation::Version));
        // Bytes that are not UTF-8 go through untouched.
        let raw = OsString::from_vec(b"echo \xff".to_vec());
        assert_eq!(
            parse_args(&[OsString::from("-c"), raw.clone()]),
            Ok(Invocation::Run(Mode::Command(raw)))
        );
    }

    #[test]
    fn anything_else_is_a_usage_error() {
        let cases: &[(&[&str], &str)] = &[
            (&["-c"], "-c needs a command"),
            (&["-c", "ls", "extra"], "-c takes one command string, not 2"),
            (&["-l"], "unexpected argument \"-l\""),
            (&["ls", "-c", "x"], "unexpected argument \"ls\""),
            (
                &["--container", "other"],
                "unexpected argument \"--container\"",
            ),
        ];
        for (words, problem) in cases {
            let error = parse_args(&args(words)).map_err(|e| e.0);
            assert!(
                error
                    .as_ref()
                    .is_err_and(|e| e.starts_with(problem) && e.contains(USAGE)),
                "{words:?}: {error:?}"
            );
        }
        let raw = [OsString::from_vec(b"\xff".to_vec())];
        assert!(parse_args(&raw).is_err());
    }

    #[test]
    fn a_command_goes_to_sh_as_one_word() {
        let argv = argv_for(
            &session(false),
            &Mode::Command("echo \"a  b\"; exit 7".into()),
        );
        assert_eq!(
            argv,
            [
                "docker",
                "exec",
                "-i",
                "container",
                "sh",
                "-c",
                "--",
                "echo \"a  b\"; exit 7"
            ]
        );
        // A command that looks like an option is still the command.
        let argv = argv_for(&session(false), &Mode::Command("--version".into()));
        assert_eq!(argv[argv.len() - 2..], ["--", "--version"]);
    }

    #[test]
    fn a_terminal_gets_a_tty_and_the_users_term_and_locale() {
        let mut session = session(true);
        session.docker = vec!["sudo".into(), "docker".into()];
        session.env = passed_env(
            [
                ("TERM", "xterm-256color"),
                ("LANG", "fr_FR.UTF-8"),
                ("LC_TIME", "C"),
                ("DOCKER_HOST", "unix:///elsewhere"),
                ("HOME", "/home/container"),
                ("BALEINE_CONTAINER_NAME", "other"),
            ]
            .map(|(name, value)| (name.into(), value.into())),
        );
        let argv = argv_for(&session, &Mode::Interactive);
        assert_eq!(
            argv[..12],
            [
                "sudo",
                "docker",
                "exec",
                "-i",
                "-t",
                "-e",
                "LANG=fr_FR.UTF-8",
                "-e",
                "LC_TIME=C",
                "-e",
                "TERM=xterm-256color",
                "container"
            ]
        );
        assert_eq!(argv[12..14], ["sh", "-c"]);
        assert_eq!(
            argv[14],
            "stty rows 24 cols 80 2>/dev/null; \
             if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"
        );
        assert_eq!(argv.len(), 15);
    }

    #[test]
    fn a_command_on_a_terminal_gets_its_size_first_and_stays_one_word() {
        let mode = Mode::Command("echo \"a  b\"".into());
        let argv = argv_for(&session(true), &mode);
        assert_eq!(
            argv[5..],
            [
                "sh",
                "-c",
                "stty rows 24 cols 80 2>/dev/null; exec sh -c -- \"$1\"",
                "sh",
                "echo \"a  b\""
            ]
        );
        // A terminal without a size (ssh -tt from a script) runs it bare.
        let mut no_size = session(true);
        no_size.size = None;
        assert_eq!(
            argv_for(&no_size, &mode)[5..],
            ["sh", "-c", "--", "echo \"a  b\""]
        );
    }

    #[test]
    fn the_sftp_subsystem_is_looked_for_then_run_directly() {
        let mode = Mode::Command("/usr/lib/openssh/sftp-server -l INFO".into());
        let (path, args) = mode.sftp_server().unwrap_or_default();
        assert_eq!(path, "/usr/lib/openssh/sftp-server");
        assert_eq!(args, ["-l", "INFO"]);
        for other in ["sftp-serverx", "echo /usr/lib/openssh/sftp-server", "'x"] {
            assert_eq!(Mode::Command(other.into()).sftp_server(), None, "{other}");
        }
        assert_eq!(Mode::Interactive.sftp_server(), None);

        let probe = session(false).sftp_probe_argv("/opt/sftp-server");
        assert_eq!(probe[..5], ["docker", "exec", "container", "sh", "-c"]);
        assert_eq!(
            probe[5],
            "for p in /opt/sftp-server /usr/lib/openssh/sftp-server /usr/lib/ssh/sftp-server \
             /usr/libexec/openssh/sftp-server /usr/libexec/sftp-server; do if [ -f \"$p\" ] \
             && [ -x \"$p\" ]; then echo \"$p\"; exit 0; fi; done; exit 3"
        );
        // Found: docker runs it directly, no shell in between.
        let found = ["/usr/lib/ssh/sftp-server", "-l", "INFO"].map(OsString::from);
        let mut argv = strings(&session(false).exec_argv(&found));
        argv.retain(|w| !w.starts_with("BALEINE_RDSH="));
        argv.remove(argv.iter().position(|w| w == "-e").unwrap());
        assert_eq!(
            argv,
            [
                "docker",
                "exec",
                "-i",
                "container",
                "/usr/lib/ssh/sftp-server",
                "-l",
                "INFO"
            ]
        );
    }

    /// An sftp packet: length, type, then `body`.
    fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        bytes.push(kind);
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn a_missing_sftp_server_is_explained_in_the_sftp_protocol() {
        // INIT (version 3), then REALPATH "." with request id 7.
        let mut client = packet(1, &3u32.to_be_bytes());
        client.extend(packet(16, &[0, 0, 0, 7, 0, 0, 0, 1, b'.']));
        let mut answer = Vec::new();
        let result = refuse_sftp(&client[..], &mut answer, "rdsh: no sftp-server");
        assert!(result.is_ok(), "{result:?}");
        let mut expected = packet(2, &3u32.to_be_bytes());
        let mut status = vec![0, 0, 0, 7, 0, 0, 0, 4, 0, 0, 0, 20];
        status.extend_from_slice(b"rdsh: no sftp-server");
        status.extend_from_slice(&[0, 0, 0, 0]);
        expected.extend(packet(101, &status));
        assert_eq!(answer, expected);

        // Whatever else arrives ends the answer without a panic.
        for garbage in [
            &b"SSH-2.0-x\r\n"[..],
            &[0, 0, 0, 0],
            &[0, 0, 0, 1, 16],
            &[0, 0, 0],
        ] {
            let _ = refuse_sftp(garbage, Vec::new(), "x");
        }
    }

    #[test]
    fn scp_and_rsync_servers_run_as_typed_after_a_check() {
        let argv = argv_for(
            &session(false),
            &Mode::Command("scp -t -- '/tmp/a b'".into()),
        );
        assert_eq!(
            argv[6],
            "command -v scp >/dev/null 2>&1 || { echo 'rdsh: no scp in container \"container\" \
             on fit03: scp -O needs it in the image (Debian: openssh-client)' >&2; exit 127; }; \
             exec sh -c -- 'scp -t -- '\\''/tmp/a b'\\'''"
        );
        let argv = argv_for(
            &session(false),
            &Mode::Command("rsync --server -e.L . x".into()),
        );
        assert!(argv[6].starts_with("command -v rsync "), "{}", argv[6]);
        // Look-alikes are plain commands.
        for command in ["scpx -t", "echo scp", "./sftp-server-x", "'unterminated"] {
            let argv = argv_for(&session(false), &Mode::Command(command.into()));
            assert_eq!(argv[6..], ["--", command]);
        }
    }

    #[test]
    fn inspect_asks_for_the_container_only() {
        assert_eq!(
            session(false).inspect_argv(),
            [
                "docker",
                "inspect",
                "--type",
                "container",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                "container"
            ]
        );
    }

    #[test]
    fn docker_answers_become_one_clear_line() {
        let session = session(false);
        let problem = |success, stdout: &str, stderr: &str| {
            session.problem(&container_state(
                success,
                stdout.as_bytes(),
                stderr.as_bytes(),
            ))
        };
        assert_eq!(problem(true, "running 0\n", ""), None);
        assert_eq!(
            problem(
                false,
                "[]\n",
                "Error response from daemon: No such container: container\n"
            )
            .as_deref(),
            Some("no container named \"container\" on fit03: deploy one first (baleine-deploy)")
        );
        assert_eq!(
            problem(true, "exited 137\n", "").as_deref(),
            Some("the container \"container\" on fit03 is not running (state: exited, exit code 137)")
        );
        assert_eq!(
            problem(true, "paused 0\n", "").as_deref(),
            Some("the container \"container\" on fit03 is not running (state: paused)")
        );
        assert_eq!(
            problem(true, "", "").as_deref(),
            Some("the container \"container\" on fit03 is not running (state: unknown)")
        );
        assert_eq!(
            problem(
                false,
                "",
                "\nCannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?\n"
            )
            .as_deref(),
            Some("cannot reach Docker on fit03: Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?")
        );
        assert_eq!(
            problem(false, "", "").as_deref(),
            Some("cannot reach Docker on fit03: docker inspect failed without a message")
        );
    }

    #[test]
    fn only_terminal_and_locale_variables_pass() {
        let passed = passed_env(
            [
                "PATH",
                "LC_ALL",
                "TERM",
                "LANGUAGE",
                "LCX",
                "DOCKER_CONTEXT",
            ]
            .map(|name| (OsString::from(name), OsString::from("v"))),
        );
        let names: Vec<_> = passed.iter().map(|(name, _)| name.clone()).collect();
        assert_eq!(names, ["LANGUAGE", "LC_ALL", "TERM"].map(OsString::from));
    }
}
