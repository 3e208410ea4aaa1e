//! How we reach a node: the system `ssh`, one session per node, killed on timeout or interrupt.
//!
//! The system client is used on purpose: it honours the user's ssh config,
//! agent, ProxyJump and known hosts exactly as their own `ssh fit01` does.

use crate::config::Config;
use crate::stop;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Why a session ended before its command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Timeout,
    Interrupted,
}

/// What a finished session left us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// Exit status of ssh (the remote command's, or 255 for ssh's own errors).
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub cut: Option<Cut>,
}

/// The ssh client command line, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Ssh {
    base: Vec<String>,
}

impl Ssh {
    pub fn from_config(config: &Config) -> Ssh {
        let mut base = config.ssh.clone();
        // Never prompt: a password or host-key question would hang a worker.
        base.extend(["-o".into(), "BatchMode=yes".into()]);
        base.extend([
            "-o".into(),
            format!(
                "ConnectTimeout={}",
                config.ssh_connect_timeout.as_secs().max(1)
            ),
        ]);
        if let Some(user) = &config.ssh_user {
            base.extend(["-l".into(), user.clone()]);
        }
        Ssh { base }
    }

    /// The full argv running `remote_command` on `node`. `--` ends ssh's
    /// options, a second guard (after name validation) against a node name
    /// ever being read as an option.
    pub fn argv(&self, node: &str, remote_command: &str) -> Vec<String> {
        let mut argv = self.base.clone();
        argv.extend(["--".into(), node.into(), remote_command.into()]);
        argv
    }

    /// Runs `remote_command` on `node` and waits, killing ssh when `timeout`
    /// passes or the run is interrupted. Stdin is null: an ssh that inherited
    /// ours would swallow the rest of the node list.
    pub fn run(&self, node: &str, remote_command: &str, timeout: Duration) -> SessionEnd {
        let argv = self.argv(node, remote_command);
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                return SessionEnd {
                    status: None,
                    stdout: String::new(),
                    stderr: format!("cannot run {}: {e}", argv[0]),
                    cut: None,
                }
            }
        };
        let pid = child.id();
        watchdog().watch(pid, Instant::now() + timeout);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (stdout, stderr) = std::thread::scope(|s| {
            let stderr = s.spawn(|| read_all(stderr));
            (read_all(stdout), stderr.join().unwrap_or_default())
        });
        // Wait for the exit without reaping, so the watchdog can never signal
        // a recycled pid: the zombie holds the pid until unwatch is done.
        let _ = waitid(
            Id::Pid(Pid::from_raw(pid as i32)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        );
        let cut = watchdog().unwatch(pid);
        let status = child.wait().ok().and_then(|s| s.code());
        SessionEnd {
            status,
            stdout,
            stderr,
            cut,
        }
    }
}

fn read_all(pipe: Option<impl Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One thread that kills sessions past their deadline, or all of them when
/// the run is interrupted, so workers can simply block on their child.
struct Watchdog {
    watched: Mutex<HashMap<u32, Watched>>,
}

struct Watched {
    deadline: Instant,
    cut: Option<Cut>,
}

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(50));
            watchdog().tick();
        });
        Watchdog {
            watched: Mutex::new(HashMap::new()),
        }
    })
}

impl Watchdog {
    fn watch(&self, pid: u32, deadline: Instant) {
        self.lock().insert(
            pid,
            Watched {
                deadline,
                cut: None,
            },
        );
    }

    fn unwatch(&self, pid: u32) -> Option<Cut> {
        self.lock().remove(&pid).and_then(|w| w.cut)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Watched>> {
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn tick(&self) {
        let now = Instant::now();
        let stopping = stop::stopping();
        for (pid, watched) in self.lock().iter_mut() {
            if watched.cut.is_some() {
                continue;
            }
            let cut = if stopping {
                Cut::Interrupted
            } else if now >= watched.deadline {
                Cut::Timeout
            } else {
                continue;
            };
            watched.cut = Some(cut);
            // Still watched means not reaped yet (see Ssh::run): the pid is ours.
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
        }
    }
}
