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
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
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
    /// The script's own output: stdout, and stderr up to the payload marker.
    pub stdout: String,
    pub stderr: String,
    /// With a payload marker: the command's own streams.
    pub payload: Option<Payload>,
    pub cut: Option<Cut>,
}

/// A command's stdout and stderr, as the sinks kept them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    pub stdout: Captured,
    pub stderr: Captured,
    /// The script printed the marker: the command started.
    pub started: bool,
    /// The script printed its trailer line (see `PayloadWiring::trailer`).
    pub trailer_seen: bool,
}

/// One stream as kept: text up to the sink's limit (nothing for a file), and
/// how many bytes there were in all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Captured {
    pub text: String,
    pub bytes: u64,
    pub truncated: bool,
}

/// Where a command's stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Kept in memory, at most this many bytes (the rest is counted, not kept).
    Memory(usize),
    /// Written in full to this file.
    File(PathBuf),
}

/// How a session's streams are wired, beyond the plain script case.
#[derive(Debug, Clone, Default)]
pub struct SessionIo {
    /// Fed to the remote command's stdin (default: nothing).
    pub stdin: Option<PathBuf>,
    pub payload: Option<PayloadWiring>,
}

/// Where a command's output starts, and where it goes.
#[derive(Debug, Clone)]
pub struct PayloadWiring {
    /// A stderr line the script prints when the command starts: before it,
    /// stderr is the script's (stage markers, errors); after it, stdout and
    /// stderr are the command's and go to the sinks.
    pub marker: String,
    /// A line the script may print on stderr amid the command's output (a
    /// notice from its own timer): taken out of the output and reported.
    pub trailer: String,
    pub stdout: Sink,
    pub stderr: Sink,
}

/// The script's own output is small; cap it anyway against a runaway node.
const SCRIPT_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

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
        self.run_with(node, remote_command, timeout, &SessionIo::default())
    }

    /// `run`, with the streams wired as `io` says.
    pub fn run_with(
        &self,
        node: &str,
        remote_command: &str,
        timeout: Duration,
        io: &SessionIo,
    ) -> SessionEnd {
        let argv = self.argv(node, remote_command);
        let failed = |stderr: String| SessionEnd {
            status: None,
            stdout: String::new(),
            stderr,
            payload: None,
            cut: None,
        };
        let stdin = match &io.stdin {
            None => Stdio::null(),
            Some(path) => match File::open(path) {
                Ok(file) => Stdio::from(file),
                Err(e) => return failed(format!("cannot read {}: {e}", path.display())),
            },
        };
        let mut child = match Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => return failed(format!("cannot run {}: {e}", argv[0])),
        };
        let pid = child.id();
        watchdog().watch(pid, Instant::now() + timeout);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (script_stdout, script_stderr, payload) = std::thread::scope(|s| match &io.payload {
            None => {
                let stderr = s.spawn(|| keep(stderr, &Sink::Memory(SCRIPT_OUTPUT_LIMIT)).text);
                let stdout = keep(stdout, &Sink::Memory(SCRIPT_OUTPUT_LIMIT)).text;
                (stdout, stderr.join().unwrap_or_default(), None)
            }
            Some(wiring) => {
                let stderr = s.spawn(|| split_at_marker(stderr, wiring));
                let stdout = keep(stdout, &wiring.stdout);
                let (script, command, started, trailer_seen) = stderr.join().unwrap_or_default();
                let payload = Payload {
                    stdout,
                    stderr: command,
                    started,
                    trailer_seen,
                };
                (String::new(), script, Some(payload))
            }
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
            stdout: script_stdout,
            stderr: script_stderr,
            payload,
            cut,
        }
    }
}

/// Reads a stream to its end into `sink`.
fn keep(pipe: Option<impl Read>, sink: &Sink) -> Captured {
    let mut captured = Captured::default();
    let Some(mut pipe) = pipe else {
        return captured;
    };
    let mut writer = SinkWriter::open(sink, &mut captured);
    let mut buffer = [0u8; 64 * 1024];
    while let Ok(n) = pipe.read(&mut buffer) {
        if n == 0 {
            break;
        }
        writer.write(&buffer[..n]);
    }
    writer.finish();
    captured
}

/// Reads stderr: lines up to the marker are the script's (returned as
/// text), the rest goes to the sink, less the trailer line if it comes.
/// Returns (script's stderr, command's stderr, marker seen, trailer seen).
fn split_at_marker(
    pipe: Option<impl Read>,
    wiring: &PayloadWiring,
) -> (String, Captured, bool, bool) {
    let mut captured = Captured::default();
    let Some(pipe) = pipe else {
        return (String::new(), captured, false, false);
    };
    let mut reader = BufReader::new(pipe);
    let mut script = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => {
                return (
                    String::from_utf8_lossy(&script).into_owned(),
                    captured,
                    false,
                    false,
                )
            }
            Ok(_) if line.strip_suffix(b"\n") == Some(wiring.marker.as_bytes()) => break,
            Ok(_) if script.len() < SCRIPT_OUTPUT_LIMIT => script.extend_from_slice(&line),
            Ok(_) => {}
        }
    }
    let script = String::from_utf8_lossy(&script).into_owned();
    let mut trailer_seen = false;
    let mut writer = SinkWriter::open(&wiring.stderr, &mut captured);
    let trailer = format!("{}\n", wiring.trailer);
    loop {
        line.clear();
        // Lines are bounded so that output without newlines cannot pile up.
        match (&mut reader).take(64 * 1024).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => match line.strip_suffix(trailer.as_bytes()) {
                Some(before) => {
                    trailer_seen = true;
                    writer.write(before);
                }
                None => writer.write(&line),
            },
        }
    }
    writer.finish();
    (script, captured, true, trailer_seen)
}

/// Writes into a sink, counting everything and keeping what the sink allows.
struct SinkWriter<'a> {
    captured: &'a mut Captured,
    limit: usize,
    kept: Vec<u8>,
    file: Option<File>,
}

impl<'a> SinkWriter<'a> {
    fn open(sink: &Sink, captured: &'a mut Captured) -> SinkWriter<'a> {
        let (limit, file) = match sink {
            Sink::Memory(limit) => (*limit, None),
            Sink::File(path) => match File::create(path) {
                Ok(file) => (0, Some(file)),
                Err(e) => {
                    captured.text = format!("cannot write {}: {e}", path.display());
                    captured.truncated = true;
                    (0, None)
                }
            },
        };
        SinkWriter {
            captured,
            limit,
            kept: Vec::new(),
            file,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.captured.bytes += bytes.len() as u64;
        if let Some(file) = &mut self.file {
            if let Err(e) = file.write_all(bytes) {
                self.captured.text = format!("write error: {e}");
                self.captured.truncated = true;
                self.file = None;
            }
            return;
        }
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if bytes.len() > room {
            self.captured.truncated = true;
        }
    }

    fn finish(self) {
        if self.file.is_none() && self.captured.text.is_empty() {
            self.captured.text = String::from_utf8_lossy(&self.kept).into_owned();
        }
    }
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
