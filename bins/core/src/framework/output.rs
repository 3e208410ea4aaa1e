//! The one writer of stdout: a JSON line per record, flushed at once, plus progress and summary on a terminal.

use crate::domain::record::{Kind, Record, Stage};
use crate::domain::stop;
use crossbeam::channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use std::io::{self, IsTerminal, Write};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What was written, for the exit status and the final summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub ok: usize,
    pub failed: usize,
    pub interrupted: usize,
}

impl Tally {
    fn count(&mut self, record: &Record) {
        if record.is_ok() {
            self.ok += 1;
        } else if record.stage() == Some(Stage::Interrupted) {
            self.interrupted += 1;
        } else {
            self.failed += 1;
        }
    }

    pub fn total(&self) -> usize {
        self.ok + self.failed + self.interrupted
    }
}

/// Writes to stderr, ignoring errors: eprint! panics on a terminal that
/// hung up (EIO), which would take the writer, and every record, with it.
///
/// One write(2) per call: stderr is unbuffered, and `write!` would send each
/// formatted piece on its own, so that a reader of our stdout writing to the
/// same terminal (`| jq`) could land its line in the middle of ours.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = io::stderr().write_all(format!($($arg)*).as_bytes());
    }};
}

/// `say!` with a newline, in the same write.
macro_rules! say_line {
    ($($arg:tt)*) => {{
        let _ = io::stderr().write_all((format!($($arg)*) + "\n").as_bytes());
    }};
}

/// How records look to a person, when stdout is a terminal (JSON lines
/// otherwise, unchanged; the run's state file always has the JSON).
pub trait View: Send {
    /// What to print for this record as it arrives, if anything.
    fn line(&mut self, _record: &Record) -> Option<String> {
        None
    }

    /// What to print once every record is in.
    fn end(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Streams on a terminal: every line as `fit07 | line`; a failed node as
/// `fit07: stage: error` (logs, exec --follow).
pub struct Prefixed;

impl View for Prefixed {
    fn line(&mut self, record: &Record) -> Option<String> {
        let text = |key: &str| record.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let node = record.node().unwrap_or("-");
        if record.is_log_line() {
            return Some(format!("{node} | {}", text("line")));
        }
        if !record.is_ok() {
            let stage = record.stage().map_or("?", |s| s.as_str());
            return Some(format!(
                "{node}: {stage}: {}",
                record.error().unwrap_or_default()
            ));
        }
        let lines: Vec<String> = [text("stdout"), text("stderr")]
            .iter()
            .flat_map(|s| s.lines())
            .map(|l| format!("{node} | {l}"))
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// What one counted record of a tool is about, as its summary names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// `node`, `tag`, `repository`, `build`.
    pub noun: &'static str,
    /// The field that names it, when it is not the record's node.
    pub field: Option<&'static str>,
    /// The jq filter whose output, piped to the tool again, retries the
    /// failures (none where a retry is no such pipeline).
    pub retry: Option<&'static str>,
}

impl Subject {
    /// The fleet tools': one record per node, retried by node name.
    pub const NODES: Subject = Subject {
        noun: "node",
        field: None,
        retry: Some("jq -r 'select(.ok | not) | .node'"),
    };

    fn name_of<'a>(&self, record: &'a Record) -> &'a str {
        match self.field {
            Some(field) => record.get(field).and_then(|v| v.as_str()),
            None => record.node(),
        }
        .unwrap_or("(none)")
    }
}

/// What a run writes: the tool's action, how many records it will count
/// (when known), how they look at a terminal, and what they are about.
pub struct Run {
    pub action: &'static str,
    pub total: Option<usize>,
    pub view: Option<Box<dyn View>>,
    pub subject: Subject,
    /// A progress line on a terminal (not where the tool's own output on
    /// stderr is its progress: a build's log).
    pub progress: bool,
    /// No progress line and no summary (`-q`): the records are the same.
    pub quiet: bool,
    /// Failed records go to stdout too (everywhere but baleine-list, whose
    /// stdout is one line per tag and whose failures stderr says): the
    /// state file keeps them all the same.
    pub failures_on_stdout: bool,
}

impl Run {
    /// A fleet tool's run over `total` nodes, with its view.
    pub fn of_nodes(
        action: &'static str,
        total: Option<usize>,
        view: Option<Box<dyn View>>,
    ) -> Run {
        Run {
            action,
            total,
            view,
            subject: Subject::NODES,
            progress: true,
            quiet: false,
            failures_on_stdout: true,
        }
    }
}

/// Handle on the writer thread: send records through `records`, then `finish`.
pub struct Writer {
    pub records: Sender<Record>,
    handle: JoinHandle<Tally>,
}

/// What the run waits for, shown in the progress line (deploy: the first
/// node resolving the digest the others will run).
static NOTE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Sets (or clears) the progress line's note.
pub fn set_note(note: Option<String>) {
    *NOTE.lock().unwrap_or_else(|p| p.into_inner()) = note;
}

fn note() -> Option<String> {
    NOTE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// How often the progress line is redrawn while no record arrives.
const REDRAW: Duration = Duration::from_millis(500);

impl Writer {
    /// Starts the writer of `run`: stdout gets the records, the run's state
    /// file a copy of each, and stderr, on a terminal, a progress line
    /// (stages as `stages` reports them) and a summary.
    pub fn start(run: Run, stages: Receiver<(String, Stage)>) -> Writer {
        let (records, received) = unbounded::<Record>();
        let handle = std::thread::spawn(move || {
            let mut screen = Screen::new(run);
            loop {
                let record = match received.recv_timeout(REDRAW) {
                    Ok(record) => Some(record),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                screen.clear_progress();
                for (node, stage) in stages.try_iter() {
                    screen.at.insert(node, stage);
                }
                if let Some(record) = &record {
                    screen.write(record);
                }
                screen.draw_progress(record.is_none());
            }
            screen.end()
        });
        Writer { records, handle }
    }

    /// A writer for a run whose records report no stages.
    pub fn without_stages(run: Run) -> Writer {
        Writer::start(run, unbounded().1)
    }

    /// Waits until every record sent so far is written.
    pub fn finish(self) -> Tally {
        drop(self.records);
        self.handle.join().unwrap_or_default()
    }
}

/// The writer thread's state: where records go, what was counted, and
/// what the terminal shows.
struct Screen {
    run: Run,
    /// stderr is a terminal: progress line and summary.
    terminal: bool,
    /// A reader of our stdout that writes to the terminal (`| jq`) prints
    /// each record after we wrote it: a progress line drawn at once would
    /// stand where its line goes. Drawn only once the records pause.
    shared_screen: bool,
    started: Instant,
    state: StateFile,
    stdout: io::StdoutLock<'static>,
    tally: Tally,
    failures: Vec<Record>,
    told_interrupt: bool,
    /// A progress line stands on the terminal: cleared before any other
    /// write. Never cleared when not drawn: the line may be a reader's
    /// half-written one (`| jq`).
    drawn: bool,
    /// The stage each node at work has reached.
    at: std::collections::HashMap<String, Stage>,
    /// A listing line was written.
    listed: bool,
    /// What the records were about (the state file's name, `latest`).
    touched: Touched,
    /// What ok records left undone, worth a summary line (save's
    /// `not_saved`), with the nodes it concerns.
    partly: Vec<(String, Vec<String>)>,
}

impl Screen {
    fn new(mut run: Run) -> Screen {
        let terminal = io::stderr().is_terminal();
        run.view = run.view.take().filter(|_| io::stdout().is_terminal());
        Screen {
            state: StateFile::create(run.action),
            run,
            terminal,
            shared_screen: terminal && stdout_is_a_pipe(),
            started: Instant::now(),
            stdout: io::stdout().lock(),
            tally: Tally::default(),
            failures: Vec::new(),
            told_interrupt: false,
            drawn: false,
            at: Default::default(),
            listed: false,
            touched: Touched::default(),
            partly: Vec::new(),
        }
    }

    /// Clears the progress line (stdout may be this terminal too: `| jq`
    /// writes to it), and says once that the run is being interrupted.
    fn clear_progress(&mut self) {
        if !self.terminal {
            return;
        }
        if std::mem::take(&mut self.drawn) {
            say!("\r\x1b[K");
        }
        if stop::interrupted() && !self.told_interrupt {
            self.told_interrupt = true;
            let left = match self.run.total {
                Some(total) => plural(
                    total.saturating_sub(self.tally.total()),
                    self.run.subject.noun,
                ),
                None => format!("the {}s", self.run.subject.noun),
            };
            say_line!(
                "{}: interrupting: stopping {left} (Ctrl-C again to abandon them)",
                self.run.action
            );
        }
    }

    /// Counts `record` if it is a node's, keeps it in the state file, and
    /// writes it to stdout (as JSON, or as the view shows it).
    fn write(&mut self, record: &Record) {
        if record.is_counted() {
            if let Some(node) = record.node() {
                self.at.remove(node);
            }
            self.tally.count(record);
            if !record.is_ok() {
                self.failures.push(record.clone());
            }
            if let Some(note) = left_undone(record) {
                let name = self.run.subject.name_of(record).to_owned();
                match self.partly.iter_mut().find(|(n, _)| *n == note) {
                    Some((_, names)) => names.push(name),
                    None => self.partly.push((note, vec![name])),
                }
            }
        }
        self.listed |= matches!(record.kind(), Kind::Listing);
        self.touched.note(record);
        let line = record.to_json_line();
        self.state.write(&line);
        if !record.is_ok() && record.is_counted() && !self.run.failures_on_stdout {
            return;
        }
        match &mut self.run.view {
            None => {
                write_line(&mut self.stdout, &line);
            }
            Some(view) => {
                if let Some(text) = view.line(record) {
                    write_line(&mut self.stdout, &printable_lines(&text));
                }
            }
        }
    }

    /// Draws the progress line: after each record, or only in a pause
    /// (`idle`) when a reader shares the screen.
    fn draw_progress(&mut self, idle: bool) {
        if self.terminal && self.run.progress && !self.run.quiet && (idle || !self.shared_screen) {
            let columns = window_size(2).map(|(_, columns)| columns);
            say!("{}", fit(self.progress(), columns));
            self.drawn = true;
        }
    }

    /// `deploy: 3/37 done, 0 failed · run 34 · 2 waiting · note · 5s`.
    fn progress(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for stage in self.at.values().map(|stage| stage.as_str()) {
            match counts.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, n)) => *n += 1,
                None => counts.push((stage, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let stages: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let mut stages = match stages.is_empty() {
            true => String::new(),
            false => format!(" · {}", stages.join(", ")),
        };
        // Nodes not done and at no stage yet: connecting, or waiting for a
        // worker or for the first node (deploy).
        let total = self.run.total;
        let done = self.tally.total();
        let waiting = total.map_or(0, |t| t.saturating_sub(done + self.at.len()));
        if waiting > 0 {
            stages += &format!(" · {waiting} waiting");
        }
        let done = match total {
            Some(total) => format!("{done}/{total}"),
            None => done.to_string(),
        };
        let note = note().map(|n| format!(" · {n}")).unwrap_or_default();
        format!(
            "{}: {done} done, {} failed{stages}{note} · {}s",
            self.run.action,
            self.tally.failed,
            self.started.elapsed().as_secs()
        )
    }

    /// The view's last lines, the state file's name and `latest` link, and
    /// the summary.
    fn end(mut self) -> Tally {
        if self.drawn {
            say!("\r\x1b[K");
        }
        if let Some(view) = &mut self.run.view {
            for text in view.end() {
                write_line(&mut self.stdout, &printable_lines(&text));
            }
        }
        let kept = self.state.close(self.run.action, &self.touched);
        // A listing that failed nowhere speaks for itself.
        if self.terminal && !self.run.quiet && (self.tally.total() > 0 || !self.listed) {
            summarize(
                &self.run,
                &self.tally,
                &self.failures,
                self.started.elapsed(),
                kept.as_deref(),
            );
            for (note, names) in &self.partly {
                let folded = crate::domain::nodes::fold_for_display(names);
                say_line!(
                    "  {} {}: {}",
                    names.len(),
                    printable(note),
                    printable(&folded)
                );
            }
        }
        self.tally
    }
}

/// Every record of a run, also in a file of its own under
/// `$XDG_STATE_HOME/baleine/` (default ~/.local/state/baleine/), so that no
/// record is lost when the reader of stdout dies (`| jq` killed by Ctrl-C).
/// The last 50 runs of each tool are kept (a read-only tool run every two
/// seconds never pushes out a deploy); a run's file is named, once it ends,
/// by its time, tool, nodes and images. `latest-ACTION.jsonl` names the last
/// run of a tool that touched a node: a run given no node (an empty
/// pipeline), or whose input was all refused, leaves it where it was. It
/// moves at the end of a run, not its start: in `jq … latest-deploy.jsonl
/// | baleine-deploy`, the new run must not point the link at its own empty
/// file before jq has opened the old one.
struct StateFile {
    file: Option<(std::path::PathBuf, std::fs::File)>,
    /// Records written.
    written: usize,
}

/// How many runs' state files are kept, per tool.
const KEPT_RUNS: usize = 50;

/// What a run's records were about: whether any touched a node (or listed
/// something), and the nodes and images they name, for the file's name.
#[derive(Debug, Default)]
struct Touched {
    any: bool,
    nodes: Vec<String>,
    images: std::collections::BTreeSet<String>,
}

/// The most nodes and images remembered for a state file's name.
const NAMED: usize = 4096;

impl Touched {
    fn note(&mut self, record: &Record) {
        match record.kind() {
            Kind::Listing => self.any = true,
            Kind::StreamLine { .. } => {}
            Kind::Outcome { .. } => {
                // A node never started (input refused, stopped before its
                // turn) was not touched; a cut session says `during`.
                let untouched = matches!(record.stage(), Some(Stage::Input))
                    || (record.stage() == Some(Stage::Interrupted)
                        && record.get("during").is_none());
                self.any |= !untouched;
                if let Some(node) = record.node().filter(|_| self.nodes.len() < NAMED) {
                    self.nodes.push(node.to_owned());
                }
                if let Some(image) = record.get("image").and_then(|i| i.as_str()) {
                    if self.images.len() < 8 {
                        self.images.insert(image.to_owned());
                    }
                }
            }
        }
    }

    /// `--fit[01-04]--busybox,bigbox`: what the run was about, for people
    /// reading the directory; bounded, and safe as a file name.
    fn name_suffix(&self) -> String {
        let bounded = |text: String| -> String {
            let safe: String = text
                .chars()
                .map(
                    |c| match c.is_ascii_alphanumeric() || "[],.-_".contains(c) {
                        true => c,
                        false => '_',
                    },
                )
                .collect();
            match safe.len() > 60 {
                true => format!("{}+more", &safe[..60]),
                false => safe,
            }
        };
        let mut suffix = String::new();
        if !self.nodes.is_empty() {
            suffix += "--";
            suffix += &bounded(crate::domain::nodes::fold_for_display(&self.nodes));
        }
        if !self.images.is_empty() {
            let images: Vec<&str> = self.images.iter().map(String::as_str).collect();
            suffix += "--";
            suffix += &bounded(images.join(","));
        }
        suffix
    }
}

impl StateFile {
    fn create(action: &str) -> StateFile {
        let file = Self::open(action)
            .map_err(|e| log::warn!("no state file for this run: {e}"))
            .ok();
        StateFile { file, written: 0 }
    }

    fn open(action: &str) -> io::Result<(std::path::PathBuf, std::fs::File)> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = state_dir().ok_or_else(|| io::Error::other("neither XDG_STATE_HOME nor HOME"))?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let stamp = crate::domain::clock::format_utc(now.as_secs()).replace(':', "");
        let name = format!("{stamp}-{:09}-{action}.jsonl", now.subsec_nanos());
        let path = dir.join(&name);
        let file = std::fs::File::create(&path)?;
        prune(&dir, action);
        Ok((path, file))
    }

    /// Ends the run's file: an empty one goes; one whose run touched a node
    /// is named by what it was about and `latest-ACTION.jsonl` points at
    /// it, atomically. Returns where the records are, if anywhere.
    fn close(self, action: &str, touched: &Touched) -> Option<std::path::PathBuf> {
        let (path, file) = self.file?;
        drop(file);
        if self.written == 0 {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        if !touched.any {
            return Some(path);
        }
        let named = path.with_file_name(format!(
            "{}{}.jsonl",
            path.file_stem()?.to_string_lossy(),
            touched.name_suffix()
        ));
        let path = match std::fs::rename(&path, &named) {
            Ok(()) => named,
            Err(_) => path,
        };
        let (dir, name) = (path.parent()?, path.file_name()?);
        let link = dir.join(format!("latest-{action}.jsonl"));
        let temporary = dir.join(format!(".latest-{action}-{}", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        if let Err(e) = std::os::unix::fs::symlink(name, &temporary)
            .and_then(|()| std::fs::rename(&temporary, &link))
        {
            log::warn!("cannot point {} at this run: {e}", link.display());
        }
        Some(path)
    }

    fn write(&mut self, line: &str) {
        if let Some((path, file)) = &mut self.file {
            self.written += 1;
            if let Err(e) = writeln!(file, "{line}") {
                log::warn!("cannot write {}: {e}", path.display());
                self.file = None;
            }
        }
    }
}

/// `$XDG_STATE_HOME/baleine`, else `~/.local/state/baleine`; an empty or
/// relative XDG_STATE_HOME is ignored, as the XDG spec says.
pub fn state_dir() -> Option<std::path::PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    set("XDG_STATE_HOME")
        .filter(|dir| std::path::Path::new(dir).is_absolute())
        .map(std::path::PathBuf::from)
        .or_else(|| set("HOME").map(|home| std::path::Path::new(&home).join(".local/state")))
        .map(|dir| dir.join("baleine"))
}

/// Whether `name` is a state file of `action`'s runs: `STAMP-NANOS-ACTION`,
/// then what the run was about after `--` (which may hold any tool's name).
fn is_run_of(name: &str, action: &str) -> bool {
    let Some(stem) = name.strip_suffix(".jsonl") else {
        return false;
    };
    let head = stem.split_once("--").map_or(stem, |(head, _)| head);
    !name.starts_with("latest-") && head.rsplit_once('-').is_some_and(|(_, a)| a == action)
}

/// Keeps the newest `KEPT_RUNS` state files of `action` (their names sort by
/// time), and every file a `latest-` link names.
fn prune(dir: &std::path::Path, action: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut runs: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            is_run_of(name, action)
        })
        .collect();
    let linked: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("latest-"))
        })
        .filter_map(|link| std::fs::read_link(link).ok())
        .map(|target| dir.join(target))
        .collect();
    runs.sort();
    let excess = runs.len().saturating_sub(KEPT_RUNS);
    for old in runs.iter().filter(|run| !linked.contains(run)).take(excess) {
        let _ = std::fs::remove_file(old);
    }
}

/// The size (rows, columns) of the terminal on `fd`, if it is one and has a size.
pub fn window_size(fd: std::os::fd::RawFd) -> Option<(u16, u16)> {
    let mut size = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes the winsize it is given.
    let result = unsafe { nix::libc::ioctl(fd, nix::libc::TIOCGWINSZ, &mut size) };
    // A pseudo-terminal may know its width and not its height (rows 0).
    (result == 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
}

/// `line` cut to fit one row of a terminal `columns` wide: a progress line
/// that wraps could not be cleared (`\r\x1b[K` clears only the last row).
fn fit(line: String, columns: Option<u16>) -> String {
    match columns {
        Some(columns) if line.chars().count() >= usize::from(columns) => {
            let keep = usize::from(columns).saturating_sub(2);
            line.chars().take(keep).chain(['…']).collect()
        }
        _ => line,
    }
}

/// True if stdout is a pipe: its reader (`| jq`) may write to our terminal.
fn stdout_is_a_pipe() -> bool {
    nix::sys::stat::fstat(io::stdout())
        .is_ok_and(|stat| stat.st_mode & nix::libc::S_IFMT == nix::libc::S_IFIFO)
}

/// `text` safe to print on a terminal: control characters (escape
/// sequences a node may have sent, newlines) are shown escaped, not obeyed.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

/// `printable`, line by line: a view's lines keep their newlines.
fn printable_lines(text: &str) -> String {
    text.split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes one line to stdout and flushes it, unless our reader is gone; the
/// first failed write (`| head -1`) marks stdout closed. False once closed.
pub fn write_line(stdout: &mut impl Write, line: &str) -> bool {
    if stop::stdout_closed() {
        return false;
    }
    if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            log::error!("cannot write to stdout: {e}");
        }
        stop::close_stdout();
        return false;
    }
    true
}

/// What an ok record says was left undone, for the summary: save's
/// `not_saved`, the mounts `docker commit` leaves out.
fn left_undone(record: &Record) -> Option<String> {
    let mounts: Vec<&str> = record
        .get("not_saved")?
        .as_array()?
        .iter()
        .filter_map(|m| m.as_str().or_else(|| m["destination"].as_str()))
        .collect();
    (record.is_ok() && !mounts.is_empty()).then(|| {
        format!(
            "saved without what commit leaves out (not_saved: {})",
            mounts.join(", ")
        )
    })
}

/// `text` in at most `most` characters: its beginning and its end (where
/// a hint is), with `…` where the middle was left out.
pub fn shortened(text: &str, most: usize) -> String {
    let count = text.chars().count();
    if count <= most {
        return text.to_owned();
    }
    let tail = most / 3;
    let head = most - tail - 3;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start} … {end}")
}

/// `count noun`, with the plural's s where it takes one.
pub fn plural(count: usize, noun: &str) -> String {
    match (count, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{count} {stem}ies"),
        (_, None) => format!("{count} {noun}s"),
    }
}

/// The last lines on a terminal: counts, then the failures grouped by what
/// went wrong (clush-style ranges of nodes), and where the records are kept.
fn summarize(
    run: &Run,
    tally: &Tally,
    failures: &[Record],
    elapsed: Duration,
    state: Option<&std::path::Path>,
) {
    let action = run.action;
    let mut line = format!(
        "{action}: {}, {} ok",
        plural(tally.total(), run.subject.noun),
        tally.ok
    );
    if tally.failed > 0 {
        line += &format!(", {} failed", tally.failed);
    }
    if tally.interrupted > 0 {
        line += &format!(", {} interrupted", tally.interrupted);
    }
    say_line!("{line} · {}s", elapsed.as_secs());
    // Grouped by stage and what the error says (its first line, and its
    // last where the hint or what became of the node is), largest first.
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for record in failures {
        let lines: Vec<&str> = record
            .error()
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let error = match lines[..] {
            [] => String::new(),
            [only] => only.to_owned(),
            [first, .., last] => format!("{first} … {last}"),
        };
        let name = run.subject.name_of(record);
        // The same error on many nodes often names each node: one group.
        let error = match name.is_empty() {
            true => error,
            false => error.replace(name, "<node>"),
        };
        let key = format!("{}: {error}", record.stage().map_or("?", Stage::as_str));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, names)) => names.push(name),
            None => groups.push((key, vec![name])),
        }
    }
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    for (key, names) in groups {
        let folded = crate::domain::nodes::fold_for_display(&names);
        say_line!(
            "  {} {}: {}",
            names.len(),
            printable(&shortened(&key, 160)),
            printable(&folded)
        );
    }
    // A failure a retry cannot mend (a bad input line, a tag that exists,
    // another tag naming the image) gets no retry tip.
    let retry_helps = failures.iter().any(|r| {
        !matches!(
            r.stage(),
            Some(Stage::Input | Stage::Exists | Stage::Referenced | Stage::Verify)
        )
    });
    if let (Some(path), true) = (state, tally.failed + tally.interrupted > 0) {
        match run.subject.retry.filter(|_| retry_helps) {
            Some(filter) => say_line!(
                "{action}: every record is in {} (retry the failed {}s: \
                 {filter} FILE | baleine-{action} ...)",
                path.display(),
                run.subject.noun
            ),
            None => say_line!("{action}: every record is in {}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_fits_one_row() {
        let line = "deploy: 3/37 done, 0 failed · run 34 · fit01 pulls · 5s".to_owned();
        assert_eq!(fit(line.clone(), None), line);
        assert_eq!(fit(line.clone(), Some(200)), line);
        let cut = fit(line.clone(), Some(20));
        assert_eq!(cut.chars().count(), 19);
        assert!(cut.ends_with('…') && line.starts_with(cut.trim_end_matches('…')));
    }

    #[test]
    fn a_state_file_belongs_to_the_tool_named_before_what_it_was_about() {
        let deploy = "2026-12-06T071500Z-123456789-deploy--fit[01-10]--faraday.repo_tools-ps.jsonl";
        assert!(is_run_of(deploy, "deploy"));
        assert!(!is_run_of(deploy, "ps"));
        assert!(is_run_of("2026-12-06T071500Z-123456789-ps.jsonl", "ps"));
        assert!(!is_run_of(
            "2026-12-06T071500Z-123456789-ps.jsonl",
            "deploy"
        ));
        assert!(!is_run_of("latest-ps.jsonl", "ps"));
    }

    #[test]
    fn a_save_that_left_mounts_out_says_so_in_the_summary() {
        let record = Record::success("fit01", "save").with("not_saved", vec!["/var", "/data"]);
        assert_eq!(
            left_undone(&record).as_deref(),
            Some("saved without what commit leaves out (not_saved: /var, /data)")
        );
        let whole = Record::success("fit01", "save").with("not_saved", Vec::<String>::new());
        assert_eq!(left_undone(&whole), None);
    }

    #[test]
    fn a_long_error_keeps_its_beginning_and_its_hint() {
        let error = format!(
            "faraday.repo/exp:v1-fit03 already exists ({}): choose another tag, or --force to replace it",
            "sha256:".to_owned() + &"a".repeat(64)
        );
        let short = shortened(&error, 100);
        assert_eq!(short.chars().count(), 100);
        assert!(short.starts_with("faraday.repo/exp:v1-fit03 already exists"));
        assert!(short.ends_with("or --force to replace it"), "{short}");
        assert!(short.contains(" … "));
        assert_eq!(shortened("short", 100), "short");
        assert_eq!(plural(1, "node"), "1 node");
        assert_eq!(plural(2, "repository"), "2 repositories");
    }

    #[test]
    fn escape_sequences_from_nodes_are_shown_not_obeyed() {
        assert_eq!(
            printable("sha256:ab\x1b[2J\x07x\ny"),
            "sha256:ab\\u{1b}[2J\\u{7}x\\ny"
        );
        assert_eq!(printable("fit01 ok é"), "fit01 ok é");
    }
}
