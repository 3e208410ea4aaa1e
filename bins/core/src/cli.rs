//! What every tool's `main` shares: argument parsing with our exit codes, logging, and running a fleet job.

use crate::config::{self, Config};
use crate::exit;
use crate::input::{self, Input, NodeSource};
use crate::output::{Tally, Writer};
use crate::record::Record;
use crate::stop;
use crate::transport::Ssh;
use crate::UsageError;
use argh::FromArgs;
use crossbeam::channel::{unbounded, Receiver};
use std::process::ExitCode;
use std::time::Duration;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs a tool's `run`, mapping usage errors to exit 2 with the tool's name,
/// after setting up logging (RUST_LOG, default warnings) and signal handling.
pub fn main(tool: &str, run: impl FnOnce() -> Result<ExitCode, UsageError>) -> ExitCode {
    let prefix = tool.to_owned();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(move |f, record| {
            use std::io::Write;
            writeln!(
                f,
                "{prefix}: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .init();
    stop::install_handlers();
    if let Ok(kind) = std::env::var("BALEINE_COMPLETE") {
        complete(&kind);
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("{tool}: {message}");
            ExitCode::from(exit::USAGE)
        }
    }
}

/// `BALEINE_COMPLETE=nodes|images|repositories TOOL`: the candidates the
/// shell completions offer, one a line. Never slow: a registry gets about
/// two seconds in all, and an unusable configuration offers nothing.
fn complete(kind: &str) {
    let Ok(config) = config::load() else { return };
    match kind {
        "nodes" => config.all_nodes.iter().for_each(|node| println!("{node}")),
        "images" | "repositories" => {
            let budget = Duration::from_secs(2);
            let deadline = std::time::Instant::now() + budget;
            let registry = crate::registry::Registry::from_config_with_timeout(&config, budget);
            for repository in registry.catalog().unwrap_or_default() {
                if kind == "repositories" {
                    println!("{repository}");
                    continue;
                }
                if std::time::Instant::now() >= deadline {
                    break;
                }
                for tag in registry.tags(&repository).unwrap_or_default() {
                    println!(
                        "{}",
                        crate::save::target_image(
                            &config.save_url,
                            config.save_port,
                            &repository,
                            &tag
                        )
                    );
                }
            }
        }
        _ => {}
    }
}

/// Parsed arguments, plus the words after `--` when the tool takes a command.
pub struct Parsed<T> {
    pub args: T,
    pub trailing: Vec<String>,
}

/// Parses the process arguments into `T`. Unlike `argh::from_env`, a usage
/// error exits 2 (not 1), and `--version` works. With `takes_command`, the
/// words after the first `--` are kept apart (argh would mix them with the
/// node arguments).
pub fn parse<T: FromArgs>(tool: &str, takes_command: bool) -> Result<Parsed<T>, ExitCode> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    parse_from(tool, &argv, takes_command)
}

pub fn parse_from<T: FromArgs>(
    tool: &str,
    argv: &[String],
    takes_command: bool,
) -> Result<Parsed<T>, ExitCode> {
    let split = if takes_command {
        argv.iter().position(|a| a == "--")
    } else {
        None
    };
    let (ours, trailing) = match split {
        Some(i) => (&argv[..i], argv[i + 1..].to_vec()),
        None => (argv, Vec::new()),
    };
    if ours.iter().any(|a| a == "--version") {
        println!("{tool} {VERSION}");
        return Err(ExitCode::SUCCESS);
    }
    let words: Vec<&str> = ours.iter().map(String::as_str).collect();
    match T::from_args(&[tool], &words) {
        Ok(args) => Ok(Parsed { args, trailing }),
        Err(early) if early.status.is_ok() => {
            print!("{}", early.output);
            Err(ExitCode::SUCCESS)
        }
        Err(early) => {
            eprintln!("{tool}: {}", early.output.trim_end());
            eprintln!("Run {tool} --help for more information.");
            Err(ExitCode::from(exit::USAGE))
        }
    }
}

/// The options every fleet tool takes, gathered from its own argument struct.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    pub nodes: Vec<String>,
    pub all: bool,
    pub parallel: Option<usize>,
    pub timeout: Option<u64>,
    pub dry_run: bool,
}

/// A job over the nodes: configuration, node source, ssh, limits. Everything
/// here is checked before any node work, so problems are usage errors (exit 2).
pub struct Fleet {
    pub config: Config,
    pub ssh: Ssh,
    pub timeout: Duration,
    pub parallel: usize,
    pub dry_run: bool,
    /// Taken by the first call to `inputs`.
    source: std::sync::Mutex<Option<NodeSource>>,
}

impl Fleet {
    pub fn prepare(options: FleetOptions, default_timeout: Duration) -> Result<Fleet, UsageError> {
        let config = config::load().map_err(|e| UsageError(e.to_string()))?;
        let parallel = options.parallel.unwrap_or(config.parallel);
        if parallel == 0 {
            return Err(UsageError("--parallel must be at least 1".into()));
        }
        let timeout = match options.timeout {
            Some(0) => return Err(UsageError("--timeout must be at least 1 second".into())),
            Some(seconds) => Duration::from_secs(seconds),
            None => default_timeout,
        };
        let source = input::node_source(&options.nodes, options.all, &config)?;
        Ok(Fleet {
            ssh: Ssh::from_config(&config),
            config,
            timeout,
            parallel,
            dry_run: options.dry_run,
            source: std::sync::Mutex::new(Some(source)),
        })
    }

    /// The node inputs, streamed as they are read.
    pub fn inputs(&self) -> Receiver<Input> {
        let (tx, rx) = unbounded();
        let source = self.source.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(source) = source {
            input::feed(source, self.config.node_naming.clone(), tx);
        }
        rx
    }

    /// Runs `work` on every node (one record each) and returns the exit status.
    pub fn run(&self, action: &'static str, work: &(dyn Fn(&str) -> Record + Sync)) -> ExitCode {
        self.run_inputs(action, &self.inputs(), |_| {}, work)
    }

    /// Like `run`, over given inputs, after `before` has had the writer (to
    /// send records of nodes it settled itself).
    pub fn run_inputs(
        &self,
        action: &'static str,
        inputs: &Receiver<Input>,
        before: impl FnOnce(&crossbeam::channel::Sender<Record>),
        work: &(dyn Fn(&str) -> Record + Sync),
    ) -> ExitCode {
        let writer = Writer::start(action);
        before(&writer.records);
        crate::fanout::run(action, self.parallel, inputs, &writer.records, work);
        exit_status(&writer.finish())
    }

    /// Runs `script` on `node` and interprets the result.
    pub fn run_script(
        &self,
        node: &str,
        script: &str,
    ) -> Result<crate::remote::Values, crate::record::Failure> {
        let end = self.ssh.run(node, script, self.timeout);
        crate::remote::interpret(&end, self.timeout)
    }

    /// `run_script`, plus every stdout line (for values that repeat).
    pub fn run_script_lines(
        &self,
        node: &str,
        script: &str,
    ) -> Result<(crate::remote::Values, Vec<String>), crate::record::Failure> {
        let end = self.ssh.run(node, script, self.timeout);
        let values = crate::remote::interpret(&end, self.timeout)?;
        Ok((values, end.stdout.lines().map(String::from).collect()))
    }

    /// The `--dry-run` record: the exact ssh command line and remote script.
    pub fn dry_run_record(&self, node: &str, action: &str, script: &str) -> Record {
        Record::success(node, action)
            .with("dry_run", true)
            .with("ssh", self.ssh.argv(node, script))
            .with("script", script)
    }
}

/// 130 when interrupted, 1 when a node failed, else 0. When our reader went
/// away we end quietly: nodes cut short by that do not count as failures.
pub fn exit_status(tally: &Tally) -> ExitCode {
    if stop::interrupted() {
        ExitCode::from(exit::INTERRUPTED)
    } else if tally.failed > 0 || (tally.interrupted > 0 && !stop::stdout_closed()) {
        ExitCode::from(exit::SOME_NODE_FAILED)
    } else {
        ExitCode::from(exit::OK)
    }
}
