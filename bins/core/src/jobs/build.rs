//! `baleine-build`: build an image with the gateway's docker (or on a node) and push every tag to the repo registry.
//!
//! Not a fleet [`Job`](crate::framework::fleet::Job): one build gives one
//! record, and its log streams as it comes (to a terminal, and whole to
//! `--log`), where a fleet session keeps a node's output until it ends. The
//! rest is the fleet's: the session runs through the ssh layer (on the
//! gateway, a local shell: `Ssh::here`) under the node's own timer, its log
//! handed over line by line, its end read by the protocol's `interpret`,
//! what a cut session left stopped by `stop_leftovers`, and the record goes
//! through the one writer (stdout, the state file, the exit status).

use crate::domain::config::{self, Config};
use crate::domain::dockerignore::Rules;
use crate::domain::nodes::NodeName;
use crate::domain::own_dir::OwnDir;
use crate::domain::record::{Failure, Fields, Record, Stage};
use crate::domain::reference::{target_image, RepoName};
use crate::framework::args::FleetOptions;
use crate::framework::cli::Tool;
use crate::framework::fleet::{leftovers_possible, run_tag, stop_leftovers, Fleet, REMOTE_GRACE};
use crate::framework::input::OwnFile;
use crate::framework::output::{Run, Subject, Writer};
use crate::framework::table::{self, Cell, Column, Table};
use crate::framework::{exit, UsageError};
use crate::remote::protocol::{interpret, session_command};
use crate::remote::quote::quote;
use crate::remote::registry::Registry;
use crate::remote::script::Script;
use crate::remote::ssh::{LineFeed, SessionIo, Ssh, StageEvents};
use crate::remote::tarball;
use argh::{ArgsInfo, FromArgs};
use crossbeam::channel::{unbounded, Receiver};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(FromArgs, ArgsInfo)]
/// Build an image from a Dockerfile, push each -t NAME:TAG to the repo
/// registry as SAVE_URL[:SAVE_PORT]/NAME:TAG, and check that the registry
/// serves each tag with the built image's digest. One JSON record.
#[argh(
    example = "baleine-build -t myexp:v1 .",
    example = "baleine-build -f docker/Dockerfile.arm -t myexp:arm --on fit07 docker/",
    example = "baleine-build -t tool:v2 https://github.com/me/tool.git && baleine-deploy -i faraday.repo/tool:v2 1-5",
    note = "By default the build runs on the gateway's docker (GATEWAY_DOCKER in baleine.conf), as \
            baleine 0.8 did. With --on NODE it runs on that node's docker over ssh, the context sent as \
            a tar stream: for a gateway without docker, or an architecture the gateway lacks. \
            The log streams to stderr on a terminal and goes whole to --log FILE; a failed record \
            carries its last lines (log_tail) and names the failing step. A tag the registry already \
            has is refused (stage \"exists\") unless --force. SAVE_NAMESPACE applies as for baleine-save.",
    error_code(
        1,
        "the build, a push or the check failed (the record says where and why)"
    ),
    error_code(
        2,
        "usage or configuration error, or a missing Dockerfile or context; nothing was built"
    ),
    error_code(130, "interrupted; the build was stopped and the record says so"),
    error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
)]
pub struct BuildArgs {
    /// the Dockerfile (default: CONTEXT/Dockerfile; with a URL or tar context, a path inside it; - for stdin)
    #[argh(option, arg_name = "FILE", short = 'f')]
    pub file: Option<String>,
    /// a name to push the image as, NAME[:TAG] (repeat for several; at least one)
    #[argh(option, arg_name = "NAME", short = 't')]
    pub tag: Vec<String>,
    /// build on this node over ssh instead of with the gateway's docker
    #[argh(option, arg_name = "NODE")]
    pub on: Option<String>,
    /// write the whole build log to this file
    #[argh(option, arg_name = "FILE")]
    pub log: Option<PathBuf>,
    /// replace tags the registry already has (default: refuse, stage "exists")
    #[argh(switch)]
    pub force: bool,
    /// give up after this long: seconds, or 90s, 5m, 1h30m (default: 1800)
    #[argh(
        option,
        arg_name = "DURATION",
        from_str_fn(crate::framework::args::seconds)
    )]
    pub timeout: Option<u64>,
    /// print the build script and where it would run, instead of building
    #[argh(switch)]
    pub dry_run: bool,
    /// no progress line and no summary on a terminal (the records are the same)
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// JSON lines on stdout even at a terminal (this tool shows no other view)
    #[argh(switch)]
    pub json: bool,
    /// the build context: a directory (default: .), a URL docker fetches (git repository, tarball), or - for a tar on stdin
    #[argh(positional)]
    pub context: Option<String>,
}

/// The `--timeout` default, which its help quotes: builds are long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// `built_on` for a build with the gateway's docker.
const GATEWAY: &str = "gateway";
/// The lines of the log a failed record carries.
const TAIL_LINES: usize = 20;
/// The name a Dockerfile from outside the context gets in the tar sent to a node.
const OUTSIDE_DOCKERFILE: &str = ".baleine-build.Dockerfile";

/// A build's one record, named by its image in the summary.
const BUILDS: Subject = Subject {
    noun: "build",
    field: Some("image"),
    retry: None,
};

/// A build on a terminal: its image, and where and how long.
const COLUMNS: &[Column] = &[
    table::IMAGE,
    table::DIGEST,
    Column {
        header: "BUILT ON",
        cell: Cell::Text("built_on"),
    },
    table::TOOK,
];

impl Tool for BuildArgs {
    const NAME: &'static str = "baleine-build";

    fn run(self, _: Vec<std::ffi::OsString>) -> Result<ExitCode, UsageError> {
        // `-` is our stdin, read whole first (one of the two at most): a
        // Dockerfile (`-f -`), or the context as a tar (`baleine-build -`).
        let from_stdin = |what: &str| -> Result<Option<OwnFile>, UsageError> {
            crate::framework::input::stdin_to_file().map_err(|e| UsageError(format!("{what}: {e}")))
        };
        let (file, context) = (self.file.as_deref(), self.context.as_deref().unwrap_or("."));
        if file == Some("-") && context == "-" {
            return Err(UsageError(
                "stdin can give the Dockerfile (-f -) or the context (-), not both".into(),
            ));
        }
        let mut own = None;
        let context = match (file, context) {
            (Some("-"), context) => match from_stdin("-f -")? {
                Some(dockerfile) => {
                    let path = own.insert(dockerfile).0.display().to_string();
                    Context::new(context, Some(&path))?
                }
                None => return Ok(ExitCode::from(exit::interrupted_status())),
            },
            (file, "-") => match from_stdin("the context -")? {
                Some(tar) => Context::Tar {
                    path: own.insert(tar).0.clone(),
                    dockerfile: file.map(String::from),
                },
                None => return Ok(ExitCode::from(exit::interrupted_status())),
            },
            (file, context) => Context::new(context, file)?,
        };
        if self.tag.is_empty() {
            return Err(UsageError(
                "give at least one -t NAME:TAG to push the image as".into(),
            ));
        }
        let (config, host) = self.host()?;
        let login = config::login_name();
        let mut names = Vec::new();
        for tag in &self.tag {
            let mut name = RepoName::parse(tag).map_err(|e| UsageError(format!("-t {e}")))?;
            name.within(config.save_namespace.as_deref(), &login)
                .map_err(UsageError)?;
            names.push(name);
        }
        let timeout = match self.timeout {
            Some(0) => return Err(UsageError("--timeout must be at least 1 second".into())),
            Some(seconds) => Duration::from_secs(seconds),
            None => DEFAULT_TIMEOUT,
        };
        let log = match &self.log {
            Some(path) => Some(log_file(path).map_err(|e| UsageError(format!("--log {e}")))?),
            None => None,
        };
        let build = Build {
            targets: names
                .iter()
                .map(|n| target_image(&config.save_url, config.save_port, &n.name, &n.tag))
                .collect(),
            names,
            context,
            force: self.force,
            timeout,
            registry: Registry::from_config(&config),
            host,
        };
        let writer = Writer::without_stages(Run {
            action: "build",
            total: Some(1),
            view: match self.dry_run {
                true => None,
                false => Table::boxed(COLUMNS),
            }
            .filter(|_| !self.json),
            subject: BUILDS,
            // The log, streaming to the terminal, is the build's progress.
            progress: false,
            quiet: self.quiet,
            failures_on_stdout: true,
        });
        let record = match self.dry_run {
            true => build.dry_run(),
            // A bug of ours still ends with the one record, saying so.
            false => crate::framework::fanout::guarded(|| build.run(log))
                .unwrap_or_else(|failure| build.record(Err(failure))),
        };
        let _ = writer.records.send(record);
        Ok(exit::status(&writer.finish()))
    }
}

impl BuildArgs {
    /// The configuration, and where the build runs: the gateway's docker
    /// in a local shell, or the one `--on` node's over ssh.
    fn host(&self) -> Result<(Config, Host), UsageError> {
        let Some(node) = &self.on else {
            let config = config::load().map_err(|e| UsageError(e.to_string()))?;
            let host = Host {
                ssh: Ssh::here(),
                node: NodeName::new(GATEWAY).expect("a valid name"),
                on_node: false,
                docker: config.gateway_docker.clone(),
                tag: run_tag(),
            };
            return Ok((config, host));
        };
        let fleet = Fleet::prepare(FleetOptions {
            nodes: vec![node.clone()],
            all: false,
            parallel: None,
            timeout: self.timeout,
            dry_run: self.dry_run,
            default_timeout: DEFAULT_TIMEOUT,
            takes_command: false,
            quiet: self.quiet,
            json: self.json,
        })?;
        let nodes: Vec<NodeName> = fleet
            .all_inputs(None)
            .into_iter()
            .filter_map(|input| input.work().map(|(node, _)| node.clone()))
            .collect();
        if crate::domain::stop::interrupted() {
            return Err(UsageError("interrupted while reading the node".into()));
        }
        let [one] = nodes.as_slice() else {
            return Err(UsageError(format!(
                "--on {node:?}: give one node to build on"
            )));
        };
        let host = Host {
            ssh: fleet.ssh.clone(),
            node: one.clone(),
            on_node: true,
            docker: fleet.config.docker.clone(),
            tag: fleet.tag.clone(),
        };
        Ok((fleet.config, host))
    }
}

/// Where a build runs.
struct Host {
    /// ssh to the node, or a local shell on the gateway (`Ssh::here`).
    ssh: Ssh,
    /// The node, or `gateway`.
    node: NodeName,
    on_node: bool,
    /// The docker command there.
    docker: Vec<String>,
    /// This run's mark on what it starts there.
    tag: String,
}

/// What to build from: a local directory and its Dockerfile, or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    /// The ignore rules are read once, before anything runs: a bad ignore
    /// file is a usage error naming it, never a context sent without them.
    Directory {
        dir: PathBuf,
        dockerfile: PathBuf,
        rules: Rules,
    },
    /// Docker fetches it; `dockerfile` is a path inside it, if given.
    Url {
        url: String,
        dockerfile: Option<String>,
    },
    /// A tar read from our stdin (`baleine-build -`), given to docker as
    /// its stdin; `dockerfile` is a path inside it, if given.
    Tar {
        path: PathBuf,
        dockerfile: Option<String>,
    },
}

impl Context {
    /// Checks the context and Dockerfile exist: missing ones are usage
    /// errors, before anything runs.
    pub fn new(context: &str, file: Option<&str>) -> Result<Context, UsageError> {
        let is_url = ["http://", "https://", "git://", "git@", "github.com/"]
            .iter()
            .any(|p| context.starts_with(p));
        if is_url {
            return Ok(Context::Url {
                url: context.to_owned(),
                dockerfile: file.map(String::from),
            });
        }
        let dir = PathBuf::from(context);
        if !dir.is_dir() {
            return Err(UsageError(format!(
                "the build context {context:?} is not a directory (nor a URL)"
            )));
        }
        let dockerfile = match file {
            Some(file) => PathBuf::from(file),
            None => dir.join("Dockerfile"),
        };
        if !dockerfile.is_file() {
            return Err(UsageError(format!(
                "no Dockerfile at {}{}",
                dockerfile.display(),
                if file.is_none() {
                    " (give one with -f)"
                } else {
                    ""
                }
            )));
        }
        let rules = tarball::context_rules(&dir, Some(&dockerfile)).map_err(UsageError)?;
        Ok(Context::Directory {
            dir,
            dockerfile,
            rules,
        })
    }

    /// The Dockerfile's path inside the context, when it is inside.
    fn dockerfile_inside(dir: &Path, dockerfile: &Path) -> Option<PathBuf> {
        let dir = dir.canonicalize().ok()?;
        let file = dockerfile.canonicalize().ok()?;
        file.strip_prefix(&dir).ok().map(Path::to_path_buf)
    }
}

/// `--log FILE`, created in its directory's handle: never through a link,
/// never in a directory another user could plant one in.
fn log_file(path: &Path) -> Result<File, String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: names no file", path.display()))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    OwnDir::open(dir)?
        .create_file(name)
        .map_err(|e| e.to_string())
}

/// One build: where from, what to push as, where, and how to check it.
struct Build {
    names: Vec<RepoName>,
    /// SAVE_URL[:SAVE_PORT]/NAME:TAG for each name.
    targets: Vec<String>,
    context: Context,
    force: bool,
    timeout: Duration,
    registry: Registry,
    host: Host,
}

/// The log of a build as its lines come: to `--log`, to the terminal, its
/// tail kept for a failed record, the digests its pushes printed.
struct BuildLog {
    /// The stages the script announces, in order with its lines (one stream).
    stages: Receiver<(String, Stage)>,
    stage: Stage,
    file: Option<File>,
    terminal: bool,
    tail: VecDeque<String>,
    /// `digest: sha256:…` as the pushes printed it.
    pushed: Vec<String>,
}

impl BuildLog {
    fn line(&mut self, line: &str) {
        for (_, stage) in self.stages.try_iter() {
            self.stage = stage;
        }
        if self.stage == Stage::Push {
            if let Some(digest) = pushed_digest(line) {
                self.pushed.push(digest);
            }
        }
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{line}");
        }
        if self.terminal {
            let _ = writeln!(
                io::stderr(),
                "{}",
                crate::framework::output::printable(line)
            );
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
    }
}

impl Build {
    /// The script that builds from `context` (a path or URL, or `-` for
    /// a tar on stdin) and pushes every target. Its output is one stream
    /// (stdout joins stderr), so that its stage marks and log lines come in
    /// order.
    fn script(&self, dockerfile: Option<&str>, context: &str) -> String {
        let docker = &self.host.docker;
        let mut script = Script::new();
        script.line("exec >&2");
        // No buildx on this docker: its CLI refuses to build unless told
        // to use the legacy builder.
        script.line(&format!(
            "{} buildx version >/dev/null 2>&1 || {{ DOCKER_BUILDKIT=0; export DOCKER_BUILDKIT; }}",
            quote(docker)
        ));
        script.stage(Stage::Build);
        let mut build: Vec<String> = docker.to_vec();
        // A failed step's container is removed too: nothing of a build
        // is left but its image.
        build.extend(["build".into(), "--force-rm".into()]);
        if let Some(file) = dockerfile {
            build.extend(["-f".into(), file.into()]);
        }
        for target in &self.targets {
            build.extend(["-t".into(), target.clone()]);
        }
        build.push(context.into());
        script.must(&build);
        script.stage(Stage::Push);
        for target in &self.targets {
            let mut push = docker.to_vec();
            push.extend(["push".into(), target.clone()]);
            script.must(&push);
        }
        script.text().to_owned()
    }

    /// The build's record: like every tool's, `node` (the node it was
    /// built on; null on the gateway), `action` and `ok` first, then what
    /// was built where, then the result's fields or the failure's.
    fn record(&self, result: Result<Fields, Failure>) -> Record {
        let node = self.host.on_node.then_some(self.host.node.as_str());
        let tags: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("{}:{}", n.name, n.tag))
            .collect();
        let base = Fields::new()
            .with("image", self.targets[0].clone())
            .with("images", self.targets.clone())
            .with("tags", tags)
            .with("built_on", self.host.node.as_str());
        Record::of(node, "build", result).after(base)
    }

    /// The Dockerfile and context the host's docker reads: on the gateway
    /// the local paths; on a node, from the tar on stdin for a directory
    /// (the Dockerfile put in it if it was outside).
    fn inputs(&self) -> (Option<String>, String) {
        match &self.context {
            Context::Url { url, dockerfile } => (dockerfile.clone(), url.clone()),
            Context::Tar { dockerfile, .. } => (dockerfile.clone(), "-".to_owned()),
            Context::Directory {
                dir, dockerfile, ..
            } if !self.host.on_node => (
                Some(dockerfile.display().to_string()),
                dir.display().to_string(),
            ),
            Context::Directory {
                dir, dockerfile, ..
            } => {
                let inside = Context::dockerfile_inside(dir, dockerfile)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| OUTSIDE_DOCKERFILE.to_owned());
                (Some(inside), "-".to_owned())
            }
        }
    }

    /// The session's command: the script under the host's own timer.
    fn command(&self) -> (String, String) {
        let (file, context) = self.inputs();
        let script = self.script(file.as_deref(), &context);
        let command = session_command(&script, &self.host.tag, &self.host.node, self.timeout);
        (script, command)
    }

    fn dry_run(&self) -> Record {
        let (script, command) = self.command();
        self.record(Ok(Fields::new()
            .with("dry_run", true)
            .with("command", self.host.ssh.argv(&self.host.node, &command))
            .with("script", script)))
    }

    fn run(&self, log: Option<File>) -> Record {
        let started = Instant::now();
        let result = self
            .refuse_existing()
            .and_then(|()| self.build_and_push(log))
            .and_then(|pushed| self.verify(pushed));
        self.record(result)
            .with("elapsed_ms", started.elapsed().as_millis() as u64)
    }

    /// A tag the registry already has is refused, unless `--force`.
    fn refuse_existing(&self) -> Result<(), Failure> {
        if self.force {
            return Ok(());
        }
        for (name, target) in self.names.iter().zip(&self.targets) {
            match self.registry.manifest_digest(&name.name, &name.tag) {
                Ok(Some(digest)) => {
                    let error = format!(
                        "{target} already exists ({digest}): choose another tag, or --force to replace it"
                    );
                    return Err(Failure::new(Stage::Exists, error));
                }
                Ok(None) => {}
                // The push meets the same registry and says what is wrong.
                Err(e) => log::warn!("cannot check whether {target} exists: {e}"),
            }
        }
        Ok(())
    }

    /// The context packed for a node's docker (a directory sent as a tar on
    /// the session's stdin), none for a URL or on the gateway.
    fn packed_context(&self) -> Result<Option<tarball::Packed>, Failure> {
        let Context::Directory {
            dir,
            dockerfile,
            rules,
        } = &self.context
        else {
            return Ok(None);
        };
        if !self.host.on_node {
            return Ok(None);
        }
        let (file, _) = self.inputs();
        let extra = (file.as_deref() == Some(OUTSIDE_DOCKERFILE))
            .then_some((dockerfile.as_path(), OUTSIDE_DOCKERFILE));
        tarball::pack_context(dir, rules, extra)
            .map(Some)
            .map_err(|e| {
                Failure::new(
                    Stage::Build,
                    format!("cannot pack the context {}: {e}", dir.display()),
                )
            })
    }

    /// Builds and pushes in one session, its log streaming as it comes;
    /// the digest the pushes printed, or the failure with the log's tail.
    fn build_and_push(&self, file: Option<File>) -> Result<String, Failure> {
        let tar = self.packed_context()?;
        let (_, command) = self.command();
        let (sender, stages) = unbounded();
        let log = Arc::new(Mutex::new(BuildLog {
            stages,
            stage: Stage::Build,
            file,
            terminal: io::stderr().is_terminal(),
            tail: VecDeque::new(),
            pushed: Vec::new(),
        }));
        let feed = log.clone();
        let stdin = match &self.context {
            Context::Tar { path, .. } => Some(path.clone()),
            _ => tar.as_ref().map(|tar| tar.path.clone()),
        };
        let io = SessionIo {
            stdin,
            stages: Some(StageEvents {
                node: self.host.node.to_string(),
                sender,
            }),
            lines: Some(LineFeed(Arc::new(move |line: &str| {
                feed.lock().unwrap_or_else(|p| p.into_inner()).line(line)
            }))),
            ..SessionIo::default()
        };
        let (ssh, node) = (&self.host.ssh, &self.host.node);
        let end = ssh.run_with(node, &command, self.timeout + REMOTE_GRACE, &io);
        // What we start, we stop: the build a cut session left running.
        if leftovers_possible(&end) {
            if let Err(error) = stop_leftovers(ssh, node, &self.host.tag, "") {
                log::warn!("{node}: could not stop the build there: {error}");
            }
        }
        drop(io);
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        let tail: Vec<String> = log.tail.iter().cloned().collect();
        match interpret(&end, self.timeout) {
            Ok(_) => log.pushed.last().cloned().ok_or_else(|| {
                Failure::new(Stage::Push, "the pushes printed no digest").with("log_tail", tail)
            }),
            // A step that failed: named, with what it said.
            Err(failure) if matches!(failure.stage, Stage::Build | Stage::Push) => {
                let error = failing_step(&log.tail, end.status);
                Err(Failure::new(failure.stage, error).with("log_tail", tail))
            }
            // Cut, or never started: the protocol's words.
            Err(failure) => Err(failure.with("log_tail", tail)),
        }
    }

    /// The registry serves every tag with the digest the pushes printed.
    fn verify(&self, pushed: String) -> Result<Fields, Failure> {
        for (name, target) in self.names.iter().zip(&self.targets) {
            let served = match self.registry.manifest_digest(&name.name, &name.tag) {
                Ok(Some(digest)) => digest,
                Ok(None) => {
                    let error = format!("{target}: not served after the push");
                    return Err(Failure::new(Stage::Verify, error));
                }
                Err(e) => return Err(Failure::new(Stage::Verify, e.to_string())),
            };
            if served != pushed {
                let error = format!(
                    "the registry serves {served} for {target}, but the build pushed {pushed}"
                );
                return Err(Failure::new(Stage::Verify, error));
            }
        }
        Ok(Fields::new().with("digest", pushed))
    }
}

/// The digest in a push's last line: `v1: digest: sha256:… size: 528`.
fn pushed_digest(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("digest: ")?;
    let digest = rest.split_whitespace().next()?;
    digest.starts_with("sha256:").then(|| digest.to_owned())
}

/// The error of a failed build: the step that failed and what it said.
/// The legacy builder announces `Step 2/3 : RUN false` and ends with
/// `The command '/bin/sh -c false' returned a non-zero code: 1`; BuildKit
/// ends with `ERROR: failed to solve: process "/bin/sh -c false" …`.
fn failing_step(tail: &VecDeque<String>, status: Option<i32>) -> String {
    let last = tail
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned());
    let step = tail.iter().rev().find(|l| l.starts_with("Step ")).cloned();
    match (step, last) {
        (Some(step), Some(last)) if step != last => format!("{step}: {last}"),
        (_, Some(last)) => last,
        (_, None) => format!(
            "exited with status {}",
            status.map_or("?".into(), |s| s.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_lines_give_the_digest() {
        let sha = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            pushed_digest(&format!("v1: digest: {sha} size: 528")),
            Some(sha)
        );
        assert_eq!(pushed_digest("The push refers to repository [x]"), None);
        assert_eq!(pushed_digest("digest: md5:x"), None);
    }

    #[test]
    fn a_failed_build_names_its_step() {
        let tail: VecDeque<String> = [
            "Step 1/3 : FROM busybox",
            " ---> 123",
            "Step 2/3 : RUN exit 3",
            " ---> Running in 456",
            "The command '/bin/sh -c exit 3' returned a non-zero code: 3",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            failing_step(&tail, Some(1)),
            "Step 2/3 : RUN exit 3: The command '/bin/sh -c exit 3' returned a non-zero code: 3"
        );
        assert_eq!(
            failing_step(&VecDeque::new(), Some(1)),
            "exited with status 1"
        );
    }

    #[test]
    fn a_missing_context_or_dockerfile_is_a_usage_error() {
        assert!(Context::new("/nonexistent/dir", None).is_err());
        let dir = std::env::temp_dir();
        let error = Context::new(dir.to_str().unwrap(), Some("/nonexistent/Dockerfile"));
        assert!(error
            .unwrap_err()
            .0
            .contains("no Dockerfile at /nonexistent/Dockerfile"));
        assert!(matches!(
            Context::new("https://github.com/me/tool.git", None),
            Ok(Context::Url { .. })
        ));
    }
}
