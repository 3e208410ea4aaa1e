//! How we reach a node: the system `ssh`, one session per node, killed on timeout or interrupt.
//!
//! The system client is used on purpose: it honours the user's ssh config,
//! agent, ProxyJump and known hosts exactly as their own `ssh fit01` does.

use crate::domain::nodes::NodeName;
use crate::remote::protocol::SessionEnd;
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod argv;
mod capture;
mod watchdog;

/// Starting a command in a session of its own, without a controlling
/// terminal (see [`DetachedCommand::detached_from_the_terminal`]).
pub trait DetachedCommand {
    /// The command runs in a new session (setsid): the terminal's Ctrl-C and
    /// hangup never reach it, and it has no terminal to prompt on. A
    /// ProxyJump's inner ssh, which BatchMode does not cover, then fails at
    /// once on a question (an unknown host key, a password) instead of
    /// stopping in the background, waiting for a terminal it cannot read.
    fn detached_from_the_terminal(&mut self) -> &mut Self;
}

impl DetachedCommand for Command {
    fn detached_from_the_terminal(&mut self) -> &mut Self {
        // SAFETY: setsid(2) is async-signal-safe, and the closure touches
        // nothing of the parent's between fork and exec.
        unsafe {
            self.pre_exec(|| {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            })
        }
    }
}

pub use argv::Ssh;
pub use capture::{LineFeed, OutputFile, PayloadWiring, SessionIo, Sink, StageEvents, StdinGate};

impl Ssh {
    /// Opens the connection kept for `node`, unless one is open, when it is
    /// a separate `ssh -N -f` (see `argv::needs_separate_master`), whose stdio is
    /// never ours. Returns ssh's complaint if the node cannot be reached.
    fn open_master(&self, node: &NodeName, deadline: Instant) -> Result<(), String> {
        let Some((socket, argv)) = self.master_argv(node) else {
            return Ok(());
        };
        if socket.exists() {
            return Ok(());
        }
        let errors = socket.with_extension("err");
        let stderr = File::create(&errors)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let Ok(mut master) = Command::new(&argv[0])
            .args(&argv[1..])
            .detached_from_the_terminal() // the watchdog cuts it, not Ctrl-C
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
        else {
            return Ok(()); // the session will say what is wrong with ssh
        };
        watchdog::watchdog().watch(master.id(), deadline, true, false);
        let _ = waitid(
            Id::Pid(Pid::from_raw(master.id() as i32)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        );
        watchdog::watchdog().unwatch(master.id());
        let status = master.wait().ok().and_then(|s| s.code());
        let complaint = std::fs::read_to_string(&errors).unwrap_or_default();
        let _ = std::fs::remove_file(&errors);
        match status {
            // Another tool may have won the race to open it: fine.
            Some(0) => Ok(()),
            _ if socket.exists() => Ok(()),
            Some(255) => Err(complaint.trim().to_owned()),
            // Anything else: let the session try on its own.
            _ => Ok(()),
        }
    }

    /// Runs `remote_command` on `node` and waits, killing ssh when `timeout`
    /// passes or the run is interrupted. Stdin is null: an ssh that inherited
    /// ours would swallow the rest of the node list.
    pub fn run(&self, node: &NodeName, remote_command: &str, timeout: Duration) -> SessionEnd {
        self.run_with(node, remote_command, timeout, &SessionIo::default())
    }

    /// `run`, with the streams wired as `io` says.
    pub fn run_with(
        &self,
        node: &NodeName,
        remote_command: &str,
        timeout: Duration,
        io: &SessionIo,
    ) -> SessionEnd {
        let deadline = Instant::now() + timeout;
        let failed = |status: Option<i32>, stderr: String| SessionEnd {
            status,
            stdout: String::new(),
            stderr,
            payload: None,
            cut: None,
        };
        if let Err(complaint) = self.open_master(node, deadline) {
            // Unreachable: report it now rather than wait for it twice.
            return failed(Some(255), complaint);
        }
        let argv = self.argv(node, remote_command);
        let stdin = match &io.stdin {
            None if io.stdin_gate.is_some() => Stdio::piped(),
            None => Stdio::null(),
            Some(path) => match File::open(path) {
                Ok(file) => Stdio::from(file),
                Err(e) => return failed(None, format!("cannot read {}: {e}", path.display())),
            },
        };
        let mut child = match Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Ctrl-C typed at the terminal reaches the foreground group, and
            // an ssh killed by it would end its session as "exit status 255"
            // before we could stop the node's work: we alone take the
            // signal, then cut every session.
            .detached_from_the_terminal()
            .spawn()
        {
            Ok(child) => child,
            Err(e) => return failed(None, format!("cannot run {}: {e}", argv[0])),
        };
        let pid = child.id();
        watchdog::watchdog().watch(pid, deadline, !io.survives_interrupt, io.ends_with_reader);
        if let (Some(gate), Some(stdin)) = (&io.stdin_gate, child.stdin.take()) {
            (gate.0)(stdin);
        }
        // With a kept connection, the master holds our pipes for the session
        // (ssh passes them over the control socket): once the ssh we started
        // is gone because we cut it, its session may never close them, so the
        // readers give up shortly after instead of waiting for an EOF.
        let abandon = AtomicBool::new(false);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (script_stdout, script_stderr, payload, cut) = std::thread::scope(|s| {
            let readers = s.spawn(|| capture::capture(stdout, stderr, io, &abandon));
            // Wait for the exit without reaping, so the watchdog can never
            // signal a recycled pid: the zombie holds the pid until unwatch.
            let _ = waitid(
                Id::Pid(Pid::from_raw(pid as i32)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
            );
            let cut = watchdog::watchdog().unwatch(pid);
            if cut.is_some() {
                std::thread::sleep(CUT_GRACE);
                abandon.store(true, Ordering::SeqCst);
            }
            let (stdout, stderr, payload) = readers.join().unwrap_or_default();
            (stdout, stderr, payload, cut)
        });
        let status = child.wait().ok().and_then(|s| s.code());
        SessionEnd {
            status,
            stdout: script_stdout,
            stderr: script_stderr,
            payload,
            cut,
        }
    }
}

/// How long a cut session's output may still trickle in.
const CUT_GRACE: Duration = Duration::from_millis(200);
