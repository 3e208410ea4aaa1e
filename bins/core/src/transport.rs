//! How we reach a node: the system `ssh`, one session per node, killed on timeout or interrupt.
//!
//! The system client is used on purpose: it honours the user's ssh config,
//! agent, ProxyJump and known hosts exactly as their own `ssh fit01` does.

use crate::config::Config;
use crate::stop;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Where connections kept for reuse live, and for how long.
    reuse: Option<Reuse>,
}

#[derive(Debug, Clone)]
struct Reuse {
    dir: PathBuf,
    persist: Duration,
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
        let reuse = control_dir()
            .filter(|_| !config.ssh_control_persist.is_zero())
            .map(|dir| Reuse {
                dir,
                persist: config.ssh_control_persist,
            });
        Ssh { base, reuse }
    }

    /// The full argv running `remote_command` on `node`. `--` ends ssh's
    /// options, a second guard (after name validation) against a node name
    /// ever being read as an option.
    pub fn argv(&self, node: &str, remote_command: &str) -> Vec<String> {
        let mut argv = self.base.clone();
        if let Some(reuse) = &self.reuse {
            // Use a kept connection if there is one, never become one: a
            // master started here would hold our pipes (see `open_master`).
            argv.extend(["-o".into(), "ControlMaster=no".into(), "-o".into()]);
            argv.push(format!(
                "ControlPath={}",
                reuse.socket(&self.base, node).display()
            ));
        }
        argv.extend(["--".into(), node.into(), remote_command.into()]);
        argv
    }

    /// Opens the connection kept for `node`, unless one is open: a separate
    /// `ssh -N -f` whose stdio is never ours, so that no persisting master
    /// can hold a session's pipes open (a known trap of ControlPersist when
    /// the master is the first session's own ssh). Returns ssh's complaint
    /// if the node cannot be reached at all.
    fn open_master(&self, node: &str, deadline: Instant) -> Result<(), String> {
        let Some(reuse) = &self.reuse else {
            return Ok(());
        };
        let socket = reuse.socket(&self.base, node);
        if socket.exists() {
            return Ok(());
        }
        let errors = socket.with_extension("err");
        let mut argv = self.base.clone();
        argv.extend(connection_reuse(&socket, reuse.persist));
        argv.extend(["-N".into(), "-f".into(), "--".into(), node.into()]);
        let stderr = File::create(&errors)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let Ok(mut master) = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
        else {
            return Ok(()); // the session will say what is wrong with ssh
        };
        watchdog().watch(master.id(), deadline);
        let _ = waitid(
            Id::Pid(Pid::from_raw(master.id() as i32)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        );
        watchdog().unwatch(master.id());
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
            .spawn()
        {
            Ok(child) => child,
            Err(e) => return failed(None, format!("cannot run {}: {e}", argv[0])),
        };
        let pid = child.id();
        watchdog().watch(pid, deadline);
        // With a kept connection, the master holds our pipes for the session
        // (ssh passes them over the control socket): once the ssh we started
        // is gone because we cut it, its session may never close them, so the
        // readers give up shortly after instead of waiting for an EOF.
        let abandon = AtomicBool::new(false);
        let stdout = child.stdout.take().map(|pipe| Abandonable {
            pipe,
            abandon: &abandon,
        });
        let stderr = child.stderr.take().map(|pipe| Abandonable {
            pipe,
            abandon: &abandon,
        });
        let (script_stdout, script_stderr, payload, cut) = std::thread::scope(|s| {
            let readers = s.spawn(|| match &io.payload {
                None => {
                    let stderr = keep(stderr, &Sink::Memory(SCRIPT_OUTPUT_LIMIT)).text;
                    (
                        keep(stdout, &Sink::Memory(SCRIPT_OUTPUT_LIMIT)).text,
                        stderr,
                        None,
                    )
                }
                Some(wiring) => std::thread::scope(|inner| {
                    let stderr = inner.spawn(|| split_at_marker(stderr, wiring));
                    let stdout = keep(stdout, &wiring.stdout);
                    let (script, command, started, trailer_seen) =
                        stderr.join().unwrap_or_default();
                    let payload = Payload {
                        stdout,
                        stderr: command,
                        started,
                        trailer_seen,
                    };
                    (String::new(), script, Some(payload))
                }),
            });
            // Wait for the exit without reaping, so the watchdog can never
            // signal a recycled pid: the zombie holds the pid until unwatch.
            let _ = waitid(
                Id::Pid(Pid::from_raw(pid as i32)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
            );
            let cut = watchdog().unwatch(pid);
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

impl Reuse {
    /// The control socket for `node`: named by a hash of the ssh command
    /// line and node, because a socket path must stay under 108 bytes
    /// whatever the node name, and another SSH or user is another connection.
    fn socket(&self, base: &[String], node: &str) -> PathBuf {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for byte in base
            .iter()
            .flat_map(|w| w.bytes().chain([0]))
            .chain(node.bytes())
        {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.dir.join(format!("{hash:016x}"))
    }
}

/// Options of a master that keeps one ssh connection per node open for
/// `persist` after its last session, so the next tool of a pipeline, or the
/// next run, skips the key exchange. Keepalives let a master notice a node
/// that was re-imaged under it.
fn connection_reuse(socket: &Path, persist: Duration) -> Vec<String> {
    [
        "ControlMaster=yes".to_owned(),
        format!("ControlPath={}", socket.display()),
        format!("ControlPersist={}s", persist.as_secs()),
        "ServerAliveInterval=10".to_owned(),
        "ServerAliveCountMax=3".to_owned(),
    ]
    .into_iter()
    .flat_map(|option| ["-o".to_owned(), option])
    .collect()
}

/// A directory only we can enter: whoever reaches a control socket gets a
/// session on the node as our ssh user. None (no reuse) if it cannot be made
/// private.
fn control_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = nix::unistd::getuid();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) => PathBuf::from(runtime).join("baleine-ssh"),
        None => PathBuf::from(format!("/tmp/baleine-ssh-{uid}")),
    };
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let private =
        meta.is_dir() && meta.uid() == uid.as_raw() && meta.permissions().mode() & 0o077 == 0;
    if !private {
        log::warn!(
            "{} is not a private directory: ssh connections will not be reused",
            dir.display()
        );
    }
    private.then_some(dir)
}

/// How long a cut session's output may still trickle in.
const CUT_GRACE: Duration = Duration::from_millis(200);

/// A pipe whose reader can be told to stop waiting: reads poll, and report
/// EOF once `abandon` is set and nothing more is there.
struct Abandonable<'a, R> {
    pipe: R,
    abandon: &'a AtomicBool,
}

impl<R: Read + AsFd> Read for Abandonable<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut fds = [PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(0) if self.abandon.load(Ordering::SeqCst) => return Ok(0),
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => return self.pipe.read(buffer),
                Err(e) => return Err(e.into()),
            }
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
