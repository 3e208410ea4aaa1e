//! Reading a session's streams: the script's own output, and a command's output into memory (capped) or a file.

use crate::domain::own_dir::OwnDir;
use crate::domain::record::Stage;
use crate::remote::protocol::{decode, Captured, Mark, Payload};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a command's stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Kept in memory, at most this many bytes (the rest is counted, not kept).
    Memory(usize),
    /// Written in full to this file, created in its directory's handle.
    File(OutputFile),
    /// Handed over line by line as the lines come (counted, not kept).
    Lines(LineFeed),
}

/// Who gets a session's stdin, as a pipe, once the session runs.
#[derive(Clone)]
pub struct StdinGate(pub std::sync::Arc<dyn Fn(std::process::ChildStdin) + Send + Sync>);

impl std::fmt::Debug for StdinGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StdinGate")
    }
}

/// A file to write in an output directory of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub dir: OwnDir,
    pub name: OsString,
}

impl OutputFile {
    /// Where it is, for messages and records.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join(&self.name)
    }
}

/// Where each line of a stream goes as it arrives: a line without its
/// newline, invalid UTF-8 replaced, a line longer than 64 KiB in pieces.
#[derive(Clone)]
pub struct LineFeed(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for LineFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineFeed")
    }
}

impl PartialEq for LineFeed {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LineFeed {}

/// How a session's streams are wired, beyond the plain script case.
#[derive(Debug, Clone, Default)]
pub struct SessionIo {
    /// Fed to the remote command's stdin (default: nothing).
    pub stdin: Option<PathBuf>,
    /// Given the session's stdin once it runs, to write to it later (a
    /// deploy's follower waits there for its pin): instead of `stdin`.
    pub stdin_gate: Option<StdinGate>,
    pub payload: Option<PayloadWiring>,
    /// Not cut when the run is interrupted (only by its deadline): for the
    /// short session that stops a run's leftovers on a node.
    pub survives_interrupt: bool,
    /// Where the script's stages are reported as they come, if anywhere.
    pub stages: Option<StageEvents>,
    /// Where the script's early lines (after `EARLY_MARK`) go as they come.
    pub early: Option<LineFeed>,
    /// Where every other line of the script's output goes as it comes (a
    /// build's log), marks left out; its stderr is still kept for the
    /// error, its stdout is not kept.
    pub lines: Option<LineFeed>,
    /// Cut when our reader goes away: the session streams to it without
    /// an end of its own (baleine-logs --follow).
    pub ends_with_reader: bool,
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

/// Reads the script's own stderr: in bounded pieces (a node may print
/// gigabytes without a newline), kept up to the limit (with a note past
/// it), each stage mark reported as it comes. Stops after `marker`, if
/// given, and says whether it came.
fn script_stderr(
    reader: &mut impl BufRead,
    marker: Option<&str>,
    io: &SessionIo,
) -> (String, bool) {
    let stages = io.stages.as_ref();
    let mut script = Vec::new();
    let mut line = Vec::new();
    let mut at_line_start = true;
    loop {
        line.clear();
        match reader.take(LINE_PIECE).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return (script_text(&script), false),
            Ok(_) => {
                let whole = at_line_start.then(|| line.strip_suffix(b"\n")).flatten();
                if whole.is_some() && whole == marker.map(str::as_bytes) {
                    return (script_text(&script), true);
                }
                let text = whole.map(String::from_utf8_lossy);
                match text.as_deref().map(decode) {
                    Some(Mark::Stage(stage)) => {
                        if let Some(events) = stages {
                            let _ = events.sender.send((events.node.clone(), stage));
                        }
                    }
                    // An early line is handed over, and is not the script's
                    // words (an error text never shows it).
                    Some(Mark::Early(early)) => {
                        if let Some(feed) = &io.early {
                            (feed.0)(early);
                        }
                        at_line_start = true;
                        continue;
                    }
                    Some(Mark::Killed | Mark::Restage(_) | Mark::Output) => {}
                    _ => {
                        if let Some(feed) = &io.lines {
                            let piece = line.strip_suffix(b"\n").unwrap_or(&line);
                            (feed.0)(&String::from_utf8_lossy(piece));
                        }
                    }
                }
                at_line_start = line.ends_with(b"\n");
                let room = (SCRIPT_OUTPUT_LIMIT + 1).saturating_sub(script.len());
                script.extend_from_slice(&line[..line.len().min(room)]);
            }
        }
    }
}

/// Where a session reports the stages its script reaches, as they come
/// (the progress line counts the nodes per stage).
#[derive(Debug, Clone)]
pub struct StageEvents {
    pub node: String,
    pub sender: crossbeam::channel::Sender<(String, Stage)>,
}

/// The most of one line read at once (see `split_at_marker`).
const LINE_PIECE: u64 = 64 * 1024;

/// The script's own output as text, with a clear note when the node sent
/// more than we keep (the excess was counted, not kept).
fn script_text(bytes: &[u8]) -> String {
    if bytes.len() <= SCRIPT_OUTPUT_LIMIT {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let kept = String::from_utf8_lossy(&bytes[..SCRIPT_OUTPUT_LIMIT]);
    format!(
        "{kept}\n[baleine: the node's output was cut at {} MiB]",
        SCRIPT_OUTPUT_LIMIT >> 20
    )
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
    io: &SessionIo,
) -> (String, Captured, bool, bool) {
    let mut captured = Captured::default();
    let Some(pipe) = pipe else {
        return (String::new(), captured, false, false);
    };
    let mut reader = BufReader::new(pipe);
    let (script, started) = script_stderr(&mut reader, Some(&wiring.marker), io);
    if !started {
        return (script, captured, false, false);
    }
    let mut line = Vec::new();
    let mut trailer_seen = false;
    let mut writer = SinkWriter::open(&wiring.stderr, &mut captured);
    let trailer = format!("{}\n", wiring.trailer);
    loop {
        line.clear();
        // Lines are bounded so that output without newlines cannot pile up.
        match (&mut reader).take(LINE_PIECE).read_until(b'\n', &mut line) {
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
    /// With a line feed: the line being received.
    feed: Option<(LineFeed, Vec<u8>)>,
}

impl<'a> SinkWriter<'a> {
    fn open(sink: &Sink, captured: &'a mut Captured) -> SinkWriter<'a> {
        let (limit, file) = match sink {
            Sink::Memory(limit) => (*limit, None),
            Sink::Lines(_) => (0, None),
            Sink::File(output) => match output.dir.create_file(&output.name) {
                Ok(file) => (0, Some(file)),
                Err(e) => {
                    captured.text = format!("cannot write: {e}");
                    captured.truncated = true;
                    (0, None)
                }
            },
        };
        let feed = match sink {
            Sink::Lines(feed) => Some((feed.clone(), Vec::new())),
            _ => None,
        };
        SinkWriter {
            captured,
            limit,
            kept: Vec::new(),
            file,
            feed,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.captured.bytes += bytes.len() as u64;
        if let Some((feed, line)) = &mut self.feed {
            for &byte in bytes {
                if byte == b'\n' || line.len() as u64 >= LINE_PIECE {
                    (feed.0)(&String::from_utf8_lossy(line));
                    line.clear();
                }
                if byte != b'\n' {
                    line.push(byte);
                }
            }
            return;
        }
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
        if let Some((feed, line)) = &self.feed {
            if !line.is_empty() {
                (feed.0)(&String::from_utf8_lossy(line));
            }
            return;
        }
        if self.file.is_none() && self.captured.text.is_empty() {
            self.captured.text = String::from_utf8_lossy(&self.kept).into_owned();
        }
    }
}

/// Reads a session's stdout and stderr to their end (or until `abandon` is
/// set and they fall silent): without wiring, both are the script's own
/// output; with it, stderr is split at the marker and the command's streams
/// go to their sinks. Returns (script's stdout, script's stderr, payload).
pub fn capture(
    stdout: Option<impl Read + AsFd + Send>,
    stderr: Option<impl Read + AsFd + Send>,
    io: &SessionIo,
    abandon: &AtomicBool,
) -> (String, String, Option<Payload>) {
    let stdout = stdout.map(|pipe| Abandonable { pipe, abandon });
    let stderr = stderr.map(|pipe| Abandonable { pipe, abandon });
    match &io.payload {
        None => std::thread::scope(|inner| {
            let stderr = inner.spawn(|| match stderr {
                Some(pipe) => script_stderr(&mut BufReader::new(pipe), None, io).0,
                None => String::new(),
            });
            let sink = match &io.lines {
                Some(feed) => Sink::Lines(feed.clone()),
                None => Sink::Memory(SCRIPT_OUTPUT_LIMIT + 1),
            };
            let captured = keep(stdout, &sink);
            let stdout = match captured.truncated {
                true => script_text(captured.text.as_bytes()),
                false => captured.text,
            };
            (stdout, stderr.join().unwrap_or_default(), None)
        }),
        Some(wiring) => std::thread::scope(|inner| {
            let stderr = inner.spawn(|| split_at_marker(stderr, wiring, io));
            let stdout = keep(stdout, &wiring.stdout);
            let (script, command, started, trailer_seen) = stderr.join().unwrap_or_default();
            let payload = Payload {
                stdout,
                stderr: command,
                started,
                trailer_seen,
            };
            (String::new(), script, Some(payload))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiring(stdout: Sink, stderr: Sink) -> PayloadWiring {
        PayloadWiring {
            marker: "@@mark".into(),
            trailer: "@@killed".into(),
            stdout,
            stderr,
        }
    }

    /// A pipe whose write end we hold: (reader, writer).
    fn pipe() -> (File, File) {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        (File::from(read), File::from(write))
    }

    #[test]
    fn memory_sinks_keep_up_to_their_limit_and_count_everything() {
        let captured = keep(Some(&b"0123456789abcdef"[..]), &Sink::Memory(10));
        assert_eq!(
            captured,
            Captured {
                text: "0123456789".into(),
                bytes: 16,
                truncated: true
            }
        );
        let whole = keep(Some(&b"short"[..]), &Sink::Memory(10));
        assert_eq!((whole.text.as_str(), whole.truncated), ("short", false));
    }

    #[test]
    fn file_sinks_get_everything_and_the_record_only_the_count() {
        let dir = std::env::temp_dir().join(format!("baleine-capture-{}", std::process::id()));
        let output = OutputFile {
            dir: OwnDir::open(&dir).unwrap(),
            name: "out".into(),
        };
        let data = vec![b'x'; 200_000];
        let captured = keep(Some(&data[..]), &Sink::File(output.clone()));
        assert_eq!((captured.bytes, captured.text.as_str()), (200_000, ""));
        assert_eq!(std::fs::read(output.path()).unwrap().len(), 200_000);
        // A directory where the file goes: said, not a panic.
        std::fs::remove_file(output.path()).unwrap();
        std::fs::create_dir(output.path()).unwrap();
        let unwritable = keep(Some(&b"x"[..]), &Sink::File(output));
        assert!(unwritable.truncated && unwritable.text.starts_with("cannot write"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn stderr_is_the_script_s_until_the_marker_then_the_command_s_less_the_trailer() {
        let stderr = b"@@baleine-stage exec\n@@mark\nwarning: x\n@@killed\nlast\n";
        let (script, command, started, trailer_seen) = split_at_marker(
            Some(&stderr[..]),
            &wiring(Sink::Memory(100), Sink::Memory(100)),
            &SessionIo::default(),
        );
        assert_eq!(script, "@@baleine-stage exec\n");
        assert_eq!(command.text, "warning: x\nlast\n");
        assert!(started && trailer_seen);
    }

    #[test]
    fn without_the_marker_the_command_never_started() {
        let (script, command, started, _) = split_at_marker(
            Some(&b"ssh: connect refused\n"[..]),
            &wiring(Sink::Memory(100), Sink::Memory(100)),
            &SessionIo::default(),
        );
        assert_eq!(script, "ssh: connect refused\n");
        assert_eq!(command.bytes, 0);
        assert!(!started);
    }

    #[test]
    fn a_command_line_without_newline_stays_bounded() {
        let mut stderr = b"@@mark\n".to_vec();
        stderr.extend(std::iter::repeat_n(b'y', 1_000_000));
        let (_, command, _, _) = split_at_marker(
            Some(&stderr[..]),
            &wiring(Sink::Memory(10), Sink::Memory(1000)),
            &SessionIo::default(),
        );
        assert_eq!((command.bytes, command.text.len()), (1_000_000, 1000));
        assert!(command.truncated);
    }

    #[test]
    fn a_runaway_script_stderr_without_newline_is_cut_with_a_note() {
        let mut stderr = vec![b'z'; SCRIPT_OUTPUT_LIMIT + 3 * LINE_PIECE as usize];
        // A marker glued to the end of a long line is not the marker.
        stderr.extend_from_slice(b"@@mark\n");
        let (script, _, started, _) = split_at_marker(
            Some(&stderr[..]),
            &wiring(Sink::Memory(10), Sink::Memory(10)),
            &SessionIo::default(),
        );
        assert!(!started);
        assert!(script.len() < SCRIPT_OUTPUT_LIMIT + 100);
        assert!(script.ends_with("[baleine: the node's output was cut at 16 MiB]"));
    }

    #[test]
    fn early_lines_are_handed_over_as_they_come_and_never_kept() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = seen.clone();
        let io = SessionIo {
            early: Some(LineFeed(std::sync::Arc::new(move |line: &str| {
                into.lock().unwrap().push(line.to_owned())
            }))),
            ..SessionIo::default()
        };
        let stderr = b"@@baleine-stage pull\n@@baleine-early digests=[\"x\"]\nError: boom\n";
        let (script, _) = script_stderr(&mut &stderr[..], None, &io);
        assert_eq!(*seen.lock().unwrap(), ["digests=[\"x\"]"]);
        assert_eq!(script, "@@baleine-stage pull\nError: boom\n");
    }

    #[test]
    fn stages_are_reported_as_they_come_and_a_plain_script_is_cut_with_a_note() {
        let (tx, rx) = crossbeam::channel::unbounded();
        let io = SessionIo {
            stages: Some(StageEvents {
                node: "fit07".into(),
                sender: tx,
            }),
            ..SessionIo::default()
        };
        let (out_r, out_w) = pipe();
        let (err_r, mut err_w) = pipe();
        let writer = std::thread::spawn(move || {
            err_w
                .write_all(b"@@baleine-stage pull\n@@baleine-stage run\n")
                .unwrap();
            err_w
                .write_all(&vec![b'e'; SCRIPT_OUTPUT_LIMIT + 10])
                .unwrap();
        });
        drop(out_w);
        let abandon = AtomicBool::new(false);
        let (_, stderr, _) = capture(Some(out_r), Some(err_r), &io, &abandon);
        writer.join().unwrap();
        let seen: Vec<(String, Stage)> = rx.try_iter().collect();
        assert_eq!(
            seen,
            [("fit07".into(), Stage::Pull), ("fit07".into(), Stage::Run)]
        );
        assert!(stderr.ends_with("[baleine: the node's output was cut at 16 MiB]"));
    }

    #[test]
    fn capture_reads_both_pipes_of_a_plain_script() {
        let (out_r, mut out_w) = pipe();
        let (err_r, mut err_w) = pipe();
        out_w.write_all(b"removed=true\n").unwrap();
        err_w.write_all(b"@@baleine-stage remove\n").unwrap();
        drop((out_w, err_w));
        let abandon = AtomicBool::new(false);
        let (stdout, stderr, payload) =
            capture(Some(out_r), Some(err_r), &SessionIo::default(), &abandon);
        assert_eq!(stdout, "removed=true\n");
        assert_eq!(stderr, "@@baleine-stage remove\n");
        assert!(payload.is_none());
    }

    #[test]
    fn capture_splits_a_wired_session() {
        let (out_r, mut out_w) = pipe();
        let (err_r, mut err_w) = pipe();
        out_w.write_all(b"hello\n").unwrap();
        err_w.write_all(b"@@mark\noops\n").unwrap();
        drop((out_w, err_w));
        let abandon = AtomicBool::new(false);
        let io = SessionIo {
            payload: Some(wiring(Sink::Memory(100), Sink::Memory(100))),
            ..SessionIo::default()
        };
        let (stdout, script, payload) = capture(Some(out_r), Some(err_r), &io, &abandon);
        let payload = payload.unwrap();
        assert_eq!((stdout.as_str(), script.as_str()), ("", ""));
        assert_eq!(payload.stdout.text, "hello\n");
        assert_eq!(payload.stderr.text, "oops\n");
        assert!(payload.started && !payload.trailer_seen);
    }

    #[test]
    fn an_abandoned_pipe_ends_though_its_writer_never_closes_it() {
        // A kept ssh master may hold a cut session's pipes open for ever.
        let (out_r, mut out_w) = pipe();
        let (err_r, _err_w) = pipe();
        out_w.write_all(b"partial").unwrap();
        let abandon = AtomicBool::new(true);
        let (stdout, stderr, _) =
            capture(Some(out_r), Some(err_r), &SessionIo::default(), &abandon);
        assert_eq!((stdout.as_str(), stderr.as_str()), ("partial", ""));
        drop(out_w);
    }
}
