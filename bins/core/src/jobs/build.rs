//! `baleine-build`: build an image with the gateway's docker (or on a node) and push every tag to the repo registry.
//!
//! Not a fleet [`Job`](crate::framework::fleet::Job): one build gives one
//! record, and its log streams as it comes (to a terminal, and whole to
//! `--log`), where a fleet session captures a node's output until it ends.
//! It shares the rest with the fleet tools: the script builder and its
//! stage marks, the node's own timer and the cleanup of what a cut session
//! left (`--on`), the registry client, the record and the exit statuses.

use crate::domain::config::{self, Config};
use crate::domain::record::{Failure, Record, Stage};
use crate::domain::reference::{target_image, RepoName};
use crate::domain::stop;
use crate::framework::args::FleetOptions;
use crate::framework::cli::Tool;
use crate::framework::fleet::Fleet;
use crate::framework::input::Input;
use crate::framework::output::write_line;
use crate::framework::{exit, UsageError};
use crate::remote::protocol::{decode, session_command, Mark};
use crate::remote::quote::quote;
use crate::remote::registry::Registry;
use crate::remote::script::Script;
use crate::remote::ssh::DetachedCommand;
use crate::remote::tarball;
use argh::{ArgsInfo, FromArgs};
use crossbeam::channel::{unbounded, RecvTimeoutError, Sender};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
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
    error_code(130, "interrupted; the build was stopped and the record says so")
)]
pub struct BuildArgs {
    /// the Dockerfile (default: CONTEXT/Dockerfile; with a URL context, a path inside it)
    #[argh(option, short = 'f')]
    pub file: Option<String>,
    /// a name to push the image as, NAME[:TAG] (repeat for several; at least one)
    #[argh(option, short = 't')]
    pub tag: Vec<String>,
    /// build on this node over ssh instead of with the gateway's docker
    #[argh(option)]
    pub on: Option<String>,
    /// write the whole build log to this file
    #[argh(option)]
    pub log: Option<PathBuf>,
    /// replace tags the registry already has (default: refuse, stage "exists")
    #[argh(switch)]
    pub force: bool,
    /// give up after this long: seconds, or 90s, 5m, 2h (default: 1800)
    #[argh(option, from_str_fn(crate::framework::args::seconds))]
    pub timeout: Option<u64>,
    /// print the build script and where it would run, instead of building
    #[argh(switch)]
    pub dry_run: bool,
    /// the build context: a directory (default: .) or a URL docker fetches (git repository, tarball)
    #[argh(positional)]
    pub context: Option<String>,
}

/// The `--timeout` default, as its help states it: builds are long.
fn default_timeout() -> Duration {
    Duration::from_secs(crate::framework::args::stated_default::<BuildArgs>(
        "--timeout",
    ))
}

/// `built_on` for a build with the gateway's docker.
const GATEWAY: &str = "gateway";
/// How long a cut build's output may still trickle in.
const CUT_GRACE: Duration = Duration::from_millis(200);
/// The lines of the log a failed record carries.
const TAIL_LINES: usize = 20;
/// A log line longer than this is cut (a node may send anything).
const MAX_LINE: usize = 64 * 1024;
/// The name a Dockerfile from outside the context gets in the tar sent to a node.
const OUTSIDE_DOCKERFILE: &str = ".baleine-build.Dockerfile";

impl Tool for BuildArgs {
    const NAME: &'static str = "baleine-build";

    fn run(self, _: Vec<String>) -> Result<ExitCode, UsageError> {
        let context = Context::new(self.context.as_deref().unwrap_or("."), self.file.as_deref())?;
        if self.tag.is_empty() {
            return Err(UsageError(
                "give at least one -t NAME:TAG to push the image as".into(),
            ));
        }
        let (config, on) = match &self.on {
            None => {
                let config = config::load().map_err(|e| UsageError(e.to_string()))?;
                (config, None)
            }
            Some(node) => {
                let fleet = Fleet::prepare(FleetOptions {
                    nodes: vec![node.clone()],
                    all: false,
                    parallel: None,
                    timeout: self.timeout,
                    dry_run: self.dry_run,
                    default_timeout: default_timeout(),
                })?;
                let nodes: Vec<String> = fleet
                    .all_inputs()
                    .iter()
                    .filter_map(Input::node)
                    .map(String::from)
                    .collect();
                let [node] = nodes.as_slice() else {
                    return Err(UsageError(format!(
                        "--on {node:?}: give one node to build on"
                    )));
                };
                let node = node.clone();
                (fleet.config.clone(), Some((fleet, node)))
            }
        };
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
            None => default_timeout(),
        };
        let log = match &self.log {
            Some(path) => Some(
                File::create(path)
                    .map_err(|e| UsageError(format!("--log {}: {e}", path.display())))?,
            ),
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
            config,
        };
        let record = match &on {
            None if self.dry_run => build.dry_run(None),
            Some((fleet, node)) if self.dry_run => build.dry_run(Some((fleet, node))),
            // A bug of ours still ends with the one record, saying so.
            _ => crate::framework::fanout::guarded(|| {
                build.run(on.as_ref().map(|(fleet, node)| (fleet, node.as_str())), log)
            })
            .unwrap_or_else(|failure| {
                build.failed(
                    on.as_ref().map_or(GATEWAY, |(_, node)| node.as_str()),
                    failure,
                )
            }),
        };
        let ok = record.is_ok();
        write_line(&mut io::stdout().lock(), &record.to_json_line());
        Ok(if stop::interrupted() {
            ExitCode::from(exit::INTERRUPTED)
        } else if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(exit::SOME_NODE_FAILED)
        })
    }
}

/// What to build from: a local directory and its Dockerfile, or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    Directory {
        dir: PathBuf,
        dockerfile: PathBuf,
    },
    /// Docker fetches it; `dockerfile` is a path inside it, if given.
    Url {
        url: String,
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
        Ok(Context::Directory { dir, dockerfile })
    }

    /// The Dockerfile's path inside the context, when it is inside.
    fn dockerfile_inside(dir: &Path, dockerfile: &Path) -> Option<PathBuf> {
        let dir = dir.canonicalize().ok()?;
        let file = dockerfile.canonicalize().ok()?;
        file.strip_prefix(&dir).ok().map(Path::to_path_buf)
    }
}

/// One build: where from, what to push as, and how to check it.
struct Build {
    names: Vec<RepoName>,
    /// SAVE_URL[:SAVE_PORT]/NAME:TAG for each name.
    targets: Vec<String>,
    context: Context,
    force: bool,
    timeout: Duration,
    registry: Registry,
    config: Config,
}

/// How a streamed build ended.
struct Streamed {
    status: Option<i32>,
    /// The last stage the script announced.
    stage: Stage,
    tail: VecDeque<String>,
    /// `digest: sha256:…` as the pushes printed it.
    pushed: Vec<String>,
    /// Why we cut it, if we did.
    cut: Option<Stage>,
}

impl Build {
    /// The script that builds from `context` (a path or URL, or `-` for
    /// a tar on stdin) and pushes every target.
    fn script(&self, docker: &[String], dockerfile: Option<&str>, context: &str) -> String {
        let mut script = Script::new();
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

    /// The record's first fields: like every tool's, `node` (the node it
    /// was built on; null on the gateway), `action` and `ok`.
    fn base(&self, built_on: &str) -> Record {
        let node = (built_on != GATEWAY).then_some(built_on);
        Record::new(node, "build", false)
            .with("image", self.targets[0].clone())
            .with("images", self.targets.clone())
            .with(
                "tags",
                self.names
                    .iter()
                    .map(|n| format!("{}:{}", n.name, n.tag))
                    .collect::<Vec<_>>(),
            )
            .with("built_on", built_on)
    }

    fn failed(&self, built_on: &str, failure: Failure) -> Record {
        self.base(built_on).failed_with(&failure)
    }

    fn dry_run(&self, on: Option<(&Fleet, &String)>) -> Record {
        let (built_on, argv, script) = match (on, &self.context) {
            (None, context) => {
                let (file, ctx) = match context {
                    Context::Directory { dir, dockerfile } => (
                        Some(dockerfile.display().to_string()),
                        dir.display().to_string(),
                    ),
                    Context::Url { url, dockerfile } => (dockerfile.clone(), url.clone()),
                };
                let script = self.script(&self.config.gateway_docker, file.as_deref(), &ctx);
                let argv = vec!["sh".to_owned(), "-c".to_owned(), script.clone()];
                (GATEWAY.to_owned(), argv, script)
            }
            (Some((fleet, node)), _) => {
                let (file, ctx) = self.remote_inputs();
                let script = self.script(&fleet.config.docker, file.as_deref(), &ctx);
                let command = session_command(&script, &fleet.tag, self.timeout);
                (node.clone(), fleet.ssh.argv(node, &command), script)
            }
        };
        self.base(&built_on)
            .with("ok", true)
            .with("dry_run", true)
            .with("command", argv)
            .with("script", script)
    }

    /// The Dockerfile and context a node's docker reads: from the tar on
    /// stdin for a directory (the Dockerfile put in it if it was outside).
    fn remote_inputs(&self) -> (Option<String>, String) {
        match &self.context {
            Context::Url { url, dockerfile } => (dockerfile.clone(), url.clone()),
            Context::Directory { dir, dockerfile } => {
                let inside = Context::dockerfile_inside(dir, dockerfile)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| OUTSIDE_DOCKERFILE.to_owned());
                (Some(inside), "-".to_owned())
            }
        }
    }

    fn run(&self, on: Option<(&Fleet, &str)>, log: Option<File>) -> Record {
        let started = Instant::now();
        let built_on = on.map_or(GATEWAY, |(_, node)| node).to_owned();
        let record = self.build_push_verify(on, log, &built_on);
        record.with("elapsed_ms", started.elapsed().as_millis() as u64)
    }

    fn build_push_verify(
        &self,
        on: Option<(&Fleet, &str)>,
        log: Option<File>,
        built_on: &str,
    ) -> Record {
        if !self.force {
            for (name, target) in self.names.iter().zip(&self.targets) {
                match self.registry.manifest_digest(&name.name, &name.tag) {
                    Ok(Some(digest)) => {
                        let error = format!(
                            "{target} already exists ({digest}): choose another tag, or --force to replace it"
                        );
                        return self.failed(built_on, Failure::new(Stage::Exists, error));
                    }
                    Ok(None) => {}
                    // The push meets the same registry and says what is wrong.
                    Err(e) => log::warn!("cannot check whether {target} exists: {e}"),
                }
            }
        }
        let streamed = match on {
            None => self.build_here(log),
            Some((fleet, node)) => self.build_on(fleet, node, log),
        };
        let streamed = match streamed {
            Ok(streamed) => streamed,
            Err(failure) => return self.failed(built_on, failure),
        };
        let tail: Vec<String> = streamed.tail.iter().cloned().collect();
        if let Some(stage) = streamed.cut {
            let error = match stage {
                Stage::Timeout => format!(
                    "gave up after {} s, during {} (the build was stopped)",
                    self.timeout.as_secs(),
                    streamed.stage
                ),
                _ => format!(
                    "interrupted during {} (the build was stopped)",
                    streamed.stage
                ),
            };
            return self.failed(built_on, Failure::new(stage, error).with("log_tail", tail));
        }
        if streamed.status != Some(0) {
            let error = failing_step(&streamed.tail, streamed.status);
            return self.failed(
                built_on,
                Failure::new(streamed.stage, error).with("log_tail", tail),
            );
        }
        // Every tag of one image has one manifest: one digest.
        let Some(pushed) = streamed.pushed.last().cloned() else {
            let error = "the pushes printed no digest".to_owned();
            return self.failed(
                built_on,
                Failure::new(Stage::Push, error).with("log_tail", tail),
            );
        };
        for (name, target) in self.names.iter().zip(&self.targets) {
            let served = match self.registry.manifest_digest(&name.name, &name.tag) {
                Ok(Some(digest)) => digest,
                Ok(None) => {
                    let error = format!("{target}: not served after the push");
                    return self.failed(built_on, Failure::new(Stage::Verify, error));
                }
                Err(e) => return self.failed(built_on, Failure::new(Stage::Verify, e.to_string())),
            };
            if served != pushed {
                let error = format!(
                    "the registry serves {served} for {target}, but the build pushed {pushed}"
                );
                return self.failed(built_on, Failure::new(Stage::Verify, error));
            }
        }
        self.base(built_on).with("ok", true).with("digest", pushed)
    }

    /// Builds with the gateway's docker: the script in a local shell, in a
    /// process group of its own so that stopping it stops its docker clients.
    fn build_here(&self, log: Option<File>) -> Result<Streamed, Failure> {
        let (file, ctx) = match &self.context {
            Context::Directory { dir, dockerfile } => (
                Some(dockerfile.display().to_string()),
                dir.display().to_string(),
            ),
            Context::Url { url, dockerfile } => (dockerfile.clone(), url.clone()),
        };
        let script = self.script(&self.config.gateway_docker, file.as_deref(), &ctx);
        let mut command = Command::new("sh");
        command.args(["-c", &script]).stdin(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = spawn(command, &self.config.gateway_docker[0])?;
        let pid = child.id() as i32;
        let stop = move || {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        };
        Ok(stream(child, log, self.timeout, &stop))
    }

    /// Builds on `node`: the context as a tar on the session's stdin, the
    /// script under the node's own timer; a cut session's leftovers are
    /// stopped on the node.
    fn build_on(&self, fleet: &Fleet, node: &str, log: Option<File>) -> Result<Streamed, Failure> {
        let (file, ctx) = self.remote_inputs();
        let tar = match &self.context {
            Context::Directory { dir, dockerfile } => {
                let extra = (file.as_deref() == Some(OUTSIDE_DOCKERFILE))
                    .then_some((dockerfile.as_path(), OUTSIDE_DOCKERFILE));
                Some(tarball::pack_context(dir, extra).map_err(|e| {
                    Failure::new(
                        Stage::Build,
                        format!("cannot pack the context {}: {e}", dir.display()),
                    )
                })?)
            }
            Context::Url { .. } => None,
        };
        let script = self.script(&fleet.config.docker, file.as_deref(), &ctx);
        let argv = fleet
            .ssh
            .argv(node, &session_command(&script, &fleet.tag, self.timeout));
        let stdin = match &tar {
            Some(tar) => Stdio::from(File::open(&tar.path).map_err(|e| {
                Failure::new(Stage::Build, format!("cannot read the context tar: {e}"))
            })?),
            None => Stdio::null(),
        };
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).stdin(stdin);
        // Ours alone to stop (see Ssh::run_with): a terminal's Ctrl-C would
        // kill ssh before the node's build is stopped.
        command.detached_from_the_terminal();
        let child = spawn(command, &argv[0])?;
        let pid = child.id() as i32;
        let stop = move || {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        };
        let streamed = stream(child, log, self.timeout, &stop);
        if streamed.cut.is_some() || streamed.status == Some(255) {
            if let Err(error) = fleet.stop_leftovers(node) {
                log::warn!("{node}: could not stop the build there: {error}");
            }
        }
        Ok(streamed)
    }
}

fn spawn(mut command: Command, program: &str) -> Result<Child, Failure> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(Stage::Build, format!("cannot run {program}: {e}")))
}

/// Reads the build's output as it comes: stage marks set the stage, every
/// other line goes to the log (file, terminal) and the tail; `stop` kills
/// the build on an interrupt or when `timeout` passes.
fn stream(mut child: Child, mut log: Option<File>, timeout: Duration, stop: &dyn Fn()) -> Streamed {
    let (lines, received) = unbounded::<String>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|pipe| {
        let lines = lines.clone();
        std::thread::spawn(move || read_lines(pipe, &lines))
    })
    .collect();
    drop(lines);
    let terminal = io::stderr().is_terminal();
    let deadline = Instant::now() + timeout;
    let mut streamed = Streamed {
        status: None,
        stage: Stage::Build,
        tail: VecDeque::new(),
        pushed: Vec::new(),
        cut: None,
    };
    // When ssh keeps connections, its master holds our pipes open past a
    // cut ssh's end: once it is gone, the rest of the output gets a moment.
    let mut gone_at: Option<Instant> = None;
    loop {
        if streamed.cut.is_some() {
            match gone_at {
                None if matches!(child.try_wait(), Ok(Some(_))) => gone_at = Some(Instant::now()),
                Some(at) if at.elapsed() > CUT_GRACE => break,
                _ => {}
            }
        }
        match received.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                match decode(&line) {
                    Mark::Stage(stage) => {
                        streamed.stage = stage;
                        continue;
                    }
                    Mark::Killed => {
                        streamed.cut = Some(Stage::Timeout);
                        continue;
                    }
                    _ => {}
                }
                if streamed.stage == Stage::Push {
                    if let Some(digest) = pushed_digest(&line) {
                        streamed.pushed.push(digest);
                    }
                }
                if let Some(file) = &mut log {
                    let _ = writeln!(file, "{line}");
                }
                if terminal {
                    eprintln!("{}", crate::framework::output::printable(&line));
                }
                if streamed.tail.len() == TAIL_LINES {
                    streamed.tail.pop_front();
                }
                streamed.tail.push_back(line);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if streamed.cut.is_none() && (stop::interrupted() || Instant::now() >= deadline) {
            streamed.cut = Some(if stop::interrupted() {
                Stage::Interrupted
            } else {
                Stage::Timeout
            });
            stop();
        }
    }
    if gone_at.is_none() {
        for reader in readers {
            let _ = reader.join();
        }
    }
    streamed.status = child.wait().ok().and_then(|s| s.code());
    streamed
}

/// Sends each line of `pipe` (cut at MAX_LINE, invalid UTF-8 replaced).
fn read_lines(pipe: Box<dyn Read + Send>, lines: &Sender<String>) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']).to_owned();
                if lines.send(text).is_err() {
                    return;
                }
            }
        }
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
    fn the_default_is_the_one_the_help_states() {
        assert_eq!(
            crate::framework::args::stated_default::<BuildArgs>("--timeout"),
            1800
        );
    }

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
