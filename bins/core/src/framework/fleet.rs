//! A fleet run: the checked options and node list, and the `Job` each tool implements, turned into one record per node.
//!
//! A tool says what to run on one node and how the result reads
//! ([`Job`]); the [`Fleet`] does the rest the same way for every tool:
//! dry runs, sessions cut by a timeout or an interrupt, failures, the nodes
//! never started, the fan-out, and the exit status.

use crate::domain::config::{self, Config};
use crate::domain::nodes::NodeName;
use crate::domain::own_dir::OwnDir;
use crate::domain::record::{Failure, Fields, Record, Stage};
use crate::domain::stop;
use crate::framework::input::{self, Input, NodeSource, Request, RequestCheck};
use crate::framework::output::{Run, View, Writer};
use crate::framework::table::{self, Column, Table};
use crate::framework::{exit, fanout, UsageError};
use crate::remote::protocol::{
    began, cleanup_command, decode, interpret, session_command, Captured, Cut, Mark, Payload,
    SessionEnd, Values,
};
use crate::remote::ssh::{OutputFile, SessionIo, Sink, Ssh, StageEvents};
use crossbeam::channel::{unbounded, Receiver, Sender};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::args::FleetOptions;

/// One tool's work on one node.
pub trait Job: Sync {
    /// What [`Job::start`] hands over to [`Job::finish`] for one node.
    type Context;

    /// The action every record names (`deploy`).
    fn action(&self) -> &'static str;

    /// What to run on `node`, with what its input line asked for it, if it
    /// was a record (see `input::Request`). An error settles the node
    /// without a session.
    fn start(
        &self,
        node: &NodeName,
        request: Option<&Request>,
    ) -> Result<Remote<Self::Context>, Failure>;

    /// How a stdin record's request is checked as its line is read, for a
    /// job that reads requests (deploy): a refused one stops the run, exit 2.
    fn request_check(&self) -> Option<RequestCheck> {
        None
    }

    /// The failure of a node the run stopped before its session began (a
    /// job may say what that leaves on the node, and what it was asked).
    fn not_started(&self, _node: &NodeName, _request: Option<&Request>) -> Failure {
        Failure::not_started()
    }

    /// The node's fields from its finished session, or why it failed.
    /// Called for every session, cut or not.
    fn finish(
        &self,
        node: &NodeName,
        context: Self::Context,
        session: &Session,
    ) -> Result<Fields, Failure>;

    /// The columns of the job's table on a terminal (see [`Job::view`]).
    fn columns(&self) -> &'static [Column] {
        &[table::NODE, table::TOOK]
    }

    /// How the records look to a person when stdout is a terminal: a table
    /// of the job's columns, one row per node, unless the job has a view of
    /// its own.
    fn view(&self) -> Option<Box<dyn View>> {
        Table::boxed(self.columns())
    }

    /// Shell run on a node after a cut session's processes are stopped
    /// there, to put the node back as the job found it where it can (deploy:
    /// the previous container it had set aside). Its stdout lines are
    /// the session's `key=value` results too.
    fn cleanup(&self, _node: &NodeName, _tag: &str) -> String {
        String::new()
    }

    /// Whether an interrupt is the run's normal end (`logs --follow`
    /// follows until told to stop): then its records, not the signal, make
    /// the exit status.
    fn interrupt_is_the_end(&self) -> bool {
        false
    }

    /// The writer's input, for a job that writes line records (see
    /// `Record::log_line`) as its sessions go: given before the first node
    /// starts, taken back (`None`) once every node is done.
    fn connect_output(&self, _records: Option<&Sender<Record>>) {}
}

/// What a job runs on one node: the remote script and how to wire it.
pub struct Remote<C> {
    pub script: String,
    pub io: SessionIo,
    pub context: C,
    /// How long the script may wait before its own work begins (a deploy
    /// follower, for its group's pin): added to its time limits, so that
    /// its work still gets the whole `--timeout`.
    pub waits: Duration,
}

impl<C> Remote<C> {
    pub fn new(script: String, context: C) -> Remote<C> {
        Remote {
            script,
            io: SessionIo::default(),
            context,
            waits: Duration::ZERO,
        }
    }
}

/// Our ssh outlives the node's own timer by this much, so that on a time
/// limit the node stops the work and says so before we give up on it.
pub const REMOTE_GRACE: Duration = Duration::from_secs(5);
/// How long stopping a run's leftovers on a node may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);

impl Remote<()> {
    /// A plain script, with nothing to remember for `finish`.
    pub fn script(script: String) -> Remote<()> {
        Remote::new(script, ())
    }
}

/// A finished ssh session, as a job reads it.
pub struct Session {
    pub end: SessionEnd,
    /// The run's timeout, for the words of a timeout failure.
    pub timeout: Duration,
}

impl Session {
    /// The script's `key=value` results, or the failure with its stage.
    pub fn values(&self) -> Result<Values, Failure> {
        interpret(&self.end, self.timeout)
    }

    /// The values of a key the script printed on several `key=` lines
    /// (where `values` keeps only the last).
    pub fn repeated<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = format!("{key}=");
        self.end
            .stdout
            .lines()
            .filter_map(move |line| line.strip_prefix(prefix.as_str()))
    }

    /// The output of the command a script handed its streams to (see
    /// `SessionIo::payload`), once it started; else why it never did: the
    /// script's own failure (no container, no docker, no ssh), or `never`
    /// at `stage`.
    pub fn payload(&self, stage: Stage, never: &str) -> Result<Payload, Failure> {
        let payload = self.end.payload.clone().unwrap_or_default();
        if payload.started {
            return Ok(payload);
        }
        Err(self
            .values()
            .err()
            .unwrap_or_else(|| Failure::new(stage, never)))
    }

    /// How that command ended: the node's own timer (its notice among the
    /// output) or our deadline, an interrupt, or its exit status.
    pub fn command_end(&self) -> CommandEnd {
        let trailer_seen = self.end.payload.as_ref().is_some_and(|p| p.trailer_seen);
        match (trailer_seen, self.end.cut) {
            (true, _) | (_, Some(Cut::Timeout)) => CommandEnd::Timeout,
            (_, Some(Cut::Interrupted)) => CommandEnd::Interrupted,
            (_, None) => CommandEnd::Exited(self.end.status),
        }
    }
}

/// How a command with its streams wired ended (see `Session::command_end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandEnd {
    Timeout,
    Interrupted,
    /// Its exit status; `None` when the session gave none.
    Exited(Option<i32>),
}

impl CommandEnd {
    /// The command's exit status, or the failure of a command cut by its
    /// time limit (`limit`) or an interrupt, worded as every job's cut
    /// sessions are (`remote::protocol::interpret`).
    pub fn exited(self, during: &str, limit: Duration) -> Result<Option<i32>, Failure> {
        match self {
            CommandEnd::Timeout => Err(Failure::timed_out_during(
                during,
                limit.as_secs(),
                "stopped",
            )),
            CommandEnd::Interrupted => Err(Failure::interrupted_during(during)),
            CommandEnd::Exited(status) => Ok(status),
        }
    }
}

/// Makes `--output-dir DIR` if missing and opens it; a usage error if it
/// cannot be, or if another user could plant links in it.
pub fn create_output_dir(dir: &Path) -> Result<OwnDir, UsageError> {
    OwnDir::open(dir).map_err(|e| UsageError(format!("--output-dir {e}")))
}

/// `--output-dir DIR`: a command's whole streams go to DIR/NODE.<out> and
/// DIR/NODE.<err>, suffixes the tool's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDir {
    dir: OwnDir,
    suffixes: [&'static str; 2],
}

impl OutputDir {
    pub fn create(dir: &Path, suffixes: [&'static str; 2]) -> Result<OutputDir, UsageError> {
        Ok(OutputDir {
            dir: create_output_dir(dir)?,
            suffixes,
        })
    }

    /// The files of `node`'s stdout and stderr.
    fn files(&self, node: &str) -> [OutputFile; 2] {
        self.suffixes.map(|suffix| OutputFile {
            dir: self.dir.clone(),
            name: format!("{node}.{suffix}").into(),
        })
    }
}

/// Where a command's stdout and stderr go: with an output directory, to
/// `node`'s files there; else kept in memory, `limit` bytes each.
pub fn output_sinks(dir: Option<&OutputDir>, node: &str, limit: usize) -> [Sink; 2] {
    match dir {
        Some(dir) => dir.files(node).map(Sink::File),
        None => [Sink::Memory(limit), Sink::Memory(limit)],
    }
}

/// How many lines a streamed node sent.
pub type LineCount = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// The most line records waiting for the writer: a slow reader slows the
/// nodes' streams down (through ssh) rather than our memory growing.
const MAX_PENDING_LINES: usize = 10_000;

/// The writer's input while a run goes, for a job whose sessions stream
/// their output as line records (`logs --follow`, `exec --follow`).
#[derive(Default)]
pub struct LineRecords {
    records: std::sync::Mutex<Option<Sender<Record>>>,
}

impl LineRecords {
    /// See `Job::connect_output`.
    pub fn connect(&self, records: Option<&Sender<Record>>) {
        *self.records.lock().unwrap_or_else(|p| p.into_inner()) = records.cloned();
    }

    /// A sink turning each line of `node`'s `stream` into a line record,
    /// now; with `stamped`, a leading RFC 3339 time (Docker's
    /// `--timestamps`) becomes the record's `ts`.
    pub fn sink(&self, node: &str, stream: &'static str, count: &LineCount, stamped: bool) -> Sink {
        let records = self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (node, count) = (node.to_owned(), count.clone());
        Sink::Lines(crate::remote::ssh::LineFeed(std::sync::Arc::new(
            move |line: &str| {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(records) = &records else { return };
                while records.len() > MAX_PENDING_LINES && !stop::stopping() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let record = match timestamped(line).filter(|_| stamped) {
                    Some((ts, line)) => Record::log_line(&node, stream, line).with("ts", ts),
                    None => Record::log_line(&node, stream, line),
                };
                let _ = records.send(record);
            },
        )))
    }
}

/// A line as `docker logs --timestamps` writes it: its RFC 3339 time (with
/// sub-seconds, as Docker gives it) and the line; None if it has none.
pub fn timestamped(line: &str) -> Option<(&str, &str)> {
    let (ts, rest) = line.split_once(' ').unwrap_or((line, ""));
    ts.parse::<jiff::Timestamp>().ok().map(|_| (ts, rest))
}

/// A command's output in a record: the text kept (or the files it went
/// to), byte counts, and whether anything was cut.
pub fn output_fields(
    dir: Option<&OutputDir>,
    node: &str,
    stdout: &Captured,
    stderr: &Captured,
) -> Fields {
    let mut record = Fields::new();
    match dir.map(|dir| dir.files(node)) {
        Some([out, err]) => {
            record.set("stdout_file", out.path().display().to_string());
            record.set("stderr_file", err.path().display().to_string());
        }
        None => {
            record.set("stdout", stdout.text.as_str());
            record.set("stderr", stderr.text.as_str());
        }
    }
    record.set("stdout_bytes", stdout.bytes);
    record.set("stderr_bytes", stderr.bytes);
    record.set("truncated", stdout.truncated || stderr.truncated);
    record
}

/// A run over the nodes: configuration, node source, ssh, limits. Everything
/// here is checked before any node work, so problems are usage errors (exit 2).
pub struct Fleet {
    pub config: Config,
    pub ssh: Ssh,
    pub timeout: Duration,
    pub parallel: usize,
    pub dry_run: bool,
    /// No progress line or summary (`-q`); JSON lines even at a terminal (`--json`).
    pub quiet: bool,
    pub json: bool,
    /// This run's mark on the processes it starts on nodes (see
    /// `remote::protocol::session_command`): no other run shares it.
    pub tag: String,
    /// The nodes come from stdin as they are read: their number is unknown.
    streamed: bool,
    /// Taken by the first call to `inputs`.
    source: std::sync::Mutex<Option<NodeSource>>,
}

/// More workers than this is a typo, not a fleet (R2Lab has 37 nodes; the
/// scale goal is 1000 from one gateway).
pub const MAX_PARALLEL: usize = 4096;

impl Fleet {
    pub fn prepare(options: FleetOptions) -> Result<Fleet, UsageError> {
        let config = config::load().map_err(|e| UsageError(e.to_string()))?;
        let parallel = options.parallel.unwrap_or(config.parallel);
        if parallel == 0 {
            return Err(UsageError("--parallel must be at least 1".into()));
        }
        if parallel > MAX_PARALLEL {
            return Err(UsageError(format!(
                "--parallel {parallel} is more than {MAX_PARALLEL}"
            )));
        }
        let timeout = match options.timeout {
            Some(0) => return Err(UsageError("--timeout must be at least 1 second".into())),
            Some(seconds) => Duration::from_secs(seconds),
            None => options.default_timeout,
        };
        let source =
            input::node_source(&options.nodes, options.all, options.takes_command, &config)?;
        let streamed = matches!(source, NodeSource::Stdin);
        Ok(Fleet {
            ssh: Ssh::from_config(&config),
            config,
            timeout,
            parallel,
            dry_run: options.dry_run,
            quiet: options.quiet,
            json: options.json,
            tag: run_tag(),
            streamed,
            source: std::sync::Mutex::new(Some(source)),
        })
    }

    /// Whether the nodes come from stdin (where records may carry requests).
    pub fn streamed(&self) -> bool {
        self.streamed
    }

    /// The node inputs, streamed as they are read; stdin records' requests
    /// checked by `check` as they come.
    pub fn inputs(&self, check: Option<RequestCheck>) -> Receiver<Input> {
        let (tx, rx) = unbounded();
        // A refused request refuses the run's input: nothing more starts,
        // and the tool exits 2 (set before its line's record is sent).
        let check = check.map(|check| -> RequestCheck {
            std::sync::Arc::new(move |request: &Request| {
                check(request).inspect_err(|e| {
                    stop::refuse_input(format!("stdin line {}: {e}", request.line))
                })
            })
        });
        let source = self.source.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(source) = source {
            input::feed(source, self.config.node_naming.clone(), check, tx);
        }
        rx
    }

    /// The whole node input, for jobs that need the list before any work
    /// (save's tags, --bootstrap, destroy's confirmation).
    pub fn all_inputs(&self, check: Option<RequestCheck>) -> Vec<Input> {
        let inputs = self.inputs(check);
        let mut all = Vec::new();
        // A stdin that never ends must not outlast Ctrl-C: what was read
        // then is all there is (the run that follows starts none of it).
        loop {
            match inputs.recv_timeout(Duration::from_millis(50)) {
                Ok(input) => all.push(input),
                Err(crossbeam::channel::RecvTimeoutError::Disconnected) => return all,
                Err(crossbeam::channel::RecvTimeoutError::Timeout) if stop::interrupted() => {
                    return all
                }
                Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Runs `job` on every node (one record each) and returns the exit status.
    pub fn run(&self, job: &impl Job) -> ExitCode {
        let inputs = self.inputs(job.request_check());
        // A listed source is all queued already; stdin may bring any number.
        let workers = match self.streamed {
            true => self.parallel,
            false => self.parallel.min(inputs.len()),
        };
        // A listed source is all queued: its number is the total.
        let total = (!self.streamed).then(|| inputs.len());
        self.fan_out(job, &inputs, Vec::new(), workers, total)
    }

    /// Like `run`, over inputs read in full beforehand (see `all_inputs`),
    /// after writing the records of nodes settled before the run.
    pub fn run_inputs(
        &self,
        job: &impl Job,
        inputs: &Receiver<Input>,
        settled: Vec<Record>,
    ) -> ExitCode {
        let workers = self.parallel.min(inputs.len());
        let total = Some(inputs.len() + settled.len());
        self.fan_out(job, inputs, settled, workers, total)
    }

    /// No more worker threads than nodes: `-j 4096` on one node is one thread.
    fn fan_out(
        &self,
        job: &impl Job,
        inputs: &Receiver<Input>,
        settled: Vec<Record>,
        workers: usize,
        total: Option<usize>,
    ) -> ExitCode {
        let (stages, reached) = unbounded();
        let view = match self.dry_run {
            true => Table::boxed(table::DRY_RUN),
            false => job.view(),
        }
        .filter(|_| !self.json);
        let run = Run {
            quiet: self.quiet,
            ..Run::of_nodes(job.action(), total, view)
        };
        let writer = Writer::start(run, reached);
        for record in settled {
            let _ = writer.records.send(record);
        }
        job.connect_output(Some(&writer.records));
        fanout::run(
            job.action(),
            workers.max(1),
            inputs,
            &writer.records,
            &fanout::NodeWork {
                work: &|node, request| self.node_record(job, node, request, &stages),
                not_started: &|node, request| job.not_started(node, request),
            },
        );
        job.connect_output(None);
        drop(stages);
        let tally = writer.finish();
        if let Some(why) = stop::input_refused() {
            eprintln!("baleine-{}: {why}: no node started after it", job.action());
        } else if tally.total() == 0 && !stop::stopping() {
            // Not an error (a pipeline that filtered to nothing exits 0),
            // but never silent.
            eprintln!("baleine-{}: {}", job.action(), no_node_note(self.streamed));
        }
        match job.interrupt_is_the_end() && stop::interrupted() && !stop::abandoned() {
            true => exit::status_of_records(&tally),
            false => exit::status(&tally),
        }
    }

    /// The one record of `node`: every way a node can end is decided here.
    fn node_record<J: Job>(
        &self,
        job: &J,
        node: &NodeName,
        request: Option<&Request>,
        stages: &crossbeam::channel::Sender<(String, Stage)>,
    ) -> Record {
        let action = job.action();
        let mut remote = match job.start(node, request) {
            Ok(remote) => remote,
            Err(failure) => return Record::failure(Some(node), action, &failure),
        };
        if stop::stopping() {
            // Waiting in `start` (deploy's digest) may have outlasted the run.
            return Record::failure(Some(node), action, &job.not_started(node, request));
        }
        let limit = self.timeout + remote.waits;
        let command = session_command(&remote.script, &self.tag, node, limit);
        if self.dry_run {
            return Record::success(node, action)
                .with("dry_run", true)
                .with("ssh", self.ssh.argv(node, &command))
                .with("script", remote.script);
        }
        // The progress line counts the nodes per stage as the scripts go.
        remote.io.stages = Some(StageEvents {
            node: node.to_string(),
            sender: stages.clone(),
        });
        // The node's own time, without what `start` waited for.
        let started = Instant::now();
        let mut end = self
            .ssh
            .run_with(node, &command, limit + REMOTE_GRACE, &remote.io);
        // Our session ended before the script did: what it started on the
        // node goes on unless we stop it (what we start, we stop). The
        // stop says the stage the script had really reached, which the
        // record must tell, not the last one we heard.
        let stopped = leftovers_possible(&end)
            .then(|| stop_leftovers(&self.ssh, node, &self.tag, &job.cleanup(node, &self.tag)));
        if let Some(Ok(said)) = &stopped {
            for line in said
                .stderr
                .lines()
                .filter(|l| matches!(decode(l), Mark::Stage(_)))
            {
                end.stderr.push_str(line);
                end.stderr.push('\n');
            }
            end.stdout.push_str(&said.stdout);
        }
        let stopped = stopped.map(|s| s.map(drop));
        // Its words say the run's --timeout: a follower's wait for its pin
        // (`waits`) was not its work's time.
        let session = Session {
            end,
            timeout: self.timeout,
        };
        let mut record = Record::of(
            Some(node),
            action,
            job.finish(node, remote.context, &session),
        );
        if let Some(stopped) = stopped {
            record.set("stopped_on_node", stopped.is_ok());
            if let Err(error) = stopped {
                record.set("stop_error", error);
            }
        }
        record.with("elapsed_ms", started.elapsed().as_millis() as u64)
    }
}

/// Stops, on `node`, everything the run `tag` started there, in sessions of
/// their own that an interrupt does not cut, and returns what the node said
/// (the stage mark of where the script was stopped, if it kept one). A
/// node whose sshd just died may be back in a moment: tried again for up
/// to CLEANUP_TIMEOUT.
pub fn stop_leftovers(
    ssh: &Ssh,
    node: &NodeName,
    tag: &str,
    then: &str,
) -> Result<SessionEnd, String> {
    let io = SessionIo {
        survives_interrupt: true,
        ..SessionIo::default()
    };
    let deadline = Instant::now() + CLEANUP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let command = format!("{}\n{then}", cleanup_command(tag, node));
        let end = ssh.run_with(node, &command, left, &io);
        let error = match (end.cut, end.status) {
            // Its stderr: the stage mark of where the script was stopped.
            (None, Some(0)) => return Ok(end),
            (Some(_), _) => {
                format!("no answer from the node in {} s", CLEANUP_TIMEOUT.as_secs())
            }
            (None, _) => end.stderr.trim().to_owned(),
        };
        if stop::abandoned() {
            return Err("abandoned (second Ctrl-C)".into());
        }
        if Instant::now() + Duration::from_secs(1) >= deadline {
            return Err(error);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// What a run given no node says: where nodes are read from, and that
/// $NODES was not read when stdin, not a terminal, came first (cron,
/// `ssh gateway cmd`).
fn no_node_note(streamed: bool) -> String {
    let nodes = std::env::var("NODES").ok().filter(|n| !n.trim().is_empty());
    match (streamed, nodes) {
        (true, Some(_)) => "no node: stdin gave none, and $NODES, though set, is read only when \
                            stdin is a terminal (give them as arguments: \"$NODES\")"
            .to_owned(),
        (true, None) => "no node: stdin gave none (nodes come from the arguments, else stdin, \
                         else $NODES when stdin is a terminal)"
            .to_owned(),
        (false, _) => "no node given".to_owned(),
    }
}

/// Whether the script may still be running on the node: we cut the
/// session, or ssh died (255, or a signal) after the script had begun.
pub fn leftovers_possible(end: &SessionEnd) -> bool {
    end.cut.is_some() || (began(&end.stderr) && matches!(end.status, None | Some(255)))
}

/// A mark no other run shares: this process, and the time to the nanosecond.
pub fn run_tag() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}-{}-{}",
        std::process::id(),
        now.as_secs(),
        now.subsec_nanos()
    )
}
