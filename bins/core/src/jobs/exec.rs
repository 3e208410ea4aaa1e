//! baleine-exec's job: run one command inside the managed container of every node, and report each outcome.
//!
//! The per-node timeout must stop the command itself, not just our ssh: a
//! `docker exec` outlives its client. So the remote script tags the
//! command's environment and, when its own timer fires, kills every process
//! of the node carrying that tag (the node's root sees the container's
//! processes), then says so on a trailer line we take out of the output.

use crate::domain::nodes::expand_placeholders;
use crate::domain::nodes::NodeName;
use crate::domain::record::{Failure, Fields, Record, Stage};
use crate::framework::cli::Tool;
use crate::framework::fleet::{
    output_fields, output_sinks, Fleet, Job, LineCount, LineRecords, OutputDir, Remote, Session,
};
use crate::framework::input::Request;
use crate::framework::output::{Prefixed, View};
use crate::framework::table::natural_key;
use crate::framework::UsageError;
use crate::remote::protocol::{killed_line, run_var, Captured, OUTPUT_MARK};
use crate::remote::quote::quote;
use crate::remote::script::{Docker, Script};
use crate::remote::ssh::{PayloadWiring, SessionIo};
use crossbeam::channel::Sender;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

crate::fleet_args! {
    /// Run COMMAND inside the managed container of every node in parallel
    /// (docker exec, every word quoted) and print one JSON record per node:
    /// exit_code, stdout and stderr (capped, with a truncated flag), elapsed_ms.
    /// "ok" is true when the command exited 0. A node's timeout kills the
    /// command inside the container, not just the connection. When stdout is a
    /// terminal, the nodes are grouped by identical output and status, each
    /// group shown once, like clush -b (JSON lines otherwise, and always in
    /// the run's state file).
    #[argh(
        example = "baleine-exec 1-5 -- uname -r",
        example = "baleine-exec -a --stdin setup.sh -- sh -s",
        example = "baleine-exec -a --output-dir logs -- journalctl -b",
        note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
                else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
                Words after -- are the command, where {{node}} and {{index}} become each node's name and \
                number (fit07, 7); {{{{ and }}}} are braces; the record shows the command as run.",
        error_code(1, "the command failed on some node, or could not run there"),
        error_code(2, "usage, configuration or node-list error; nothing was done"),
        error_code(130, "interrupted; every node still got a record"),
        error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
    )]
    pub struct ExecArgs {
        timeout: (300, "kill the command after this long: seconds, or 90s, 5m, 1h30m (default: 300)"),
        /// each line of output a record as it comes (fit07 | line on a terminal),
        /// the node's record at its end; Ctrl-C stops every node's command
        #[argh(switch)]
        pub follow: bool,
        /// feed this file to the command's stdin on every node (- for ours)
        #[argh(option, arg_name = "FILE")]
        pub stdin: Option<PathBuf>,
        /// bytes of stdout and of stderr kept in each record (default: 65536)
        #[argh(option, arg_name = "BYTES", default = "64 * 1024")]
        pub max_output: usize,
        /// write each node's full output to DIR/<node>.out and DIR/<node>.err instead
        #[argh(option, arg_name = "DIR")]
        pub output_dir: Option<PathBuf>,
    }
}

impl Tool for ExecArgs {
    const NAME: &'static str = "baleine-exec";
    const AFTER_DASHES: crate::framework::cli::AfterDashes =
        crate::framework::cli::AfterDashes::Command;

    fn run(self, command: Vec<std::ffi::OsString>) -> Result<ExitCode, UsageError> {
        let command = crate::framework::cli::command_words(command);
        // `--stdin -`: our own stdin, read whole first, for every node.
        let mut own = None;
        let stdin = match self.stdin.as_deref() {
            Some(dash) if dash == std::path::Path::new("-") => {
                if self.nodes.is_empty() && !self.all {
                    return Err(UsageError(
                        "--stdin - gives stdin to the command: give the nodes as arguments".into(),
                    ));
                }
                match crate::framework::input::stdin_to_file() {
                    Ok(Some(file)) => Some(own.insert(file).0.clone()),
                    Ok(None) => {
                        return Ok(ExitCode::from(crate::framework::exit::interrupted_status()))
                    }
                    Err(e) => return Err(UsageError(format!("--stdin -: {e}"))),
                }
            }
            other => other.map(PathBuf::from),
        };
        if self.follow && self.output_dir.is_some() {
            return Err(UsageError(
                "--follow writes records as lines come; --output-dir keeps whole streams".into(),
            ));
        }
        let mut plan = ExecPlan::new(command, stdin, self.max_output, self.output_dir.clone())?;
        plan.follow = self.follow;
        let fleet = Fleet::prepare(crate::framework::args::FleetOptions {
            takes_command: true,
            ..self.fleet_options()
        })?;
        Ok(fleet.run(&ExecJob::new(&fleet, plan)))
    }
}

/// Everything about one exec that is the same on every node.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    pub command: Vec<String>,
    /// Fed to the command's stdin on every node.
    pub stdin: Option<PathBuf>,
    /// Bytes of stdout and of stderr kept in a record.
    pub max_output: usize,
    /// Write the full streams to DIR/<node>.out and .err instead.
    pub output_dir: Option<OutputDir>,
    /// Each line a record as it comes (`--follow`).
    pub follow: bool,
}

impl ExecPlan {
    pub fn new(
        command: Vec<String>,
        stdin: Option<PathBuf>,
        max_output: usize,
        output_dir: Option<PathBuf>,
    ) -> Result<ExecPlan, UsageError> {
        if command.is_empty() {
            return Err(UsageError(
                "no command: give it after --, e.g. baleine-exec 1-5 -- uname -a".into(),
            ));
        }
        if let Some(path) = &stdin {
            std::fs::metadata(path)
                .map_err(|e| UsageError(format!("--stdin {}: {e}", path.display())))?;
        }
        let output_dir = match output_dir {
            Some(dir) => Some(OutputDir::create(&dir, ["out", "err"])?),
            None => None,
        };
        Ok(ExecPlan {
            command,
            stdin,
            max_output,
            output_dir,
            follow: false,
        })
    }
}

/// The remote script: check the managed container runs, start a timer that
/// kills the tagged command after `limit`, then run it in the foreground (so
/// it keeps our stdin) and exit with its status.
pub fn exec_script(docker: &Docker, plan: &ExecPlan, tag: &str) -> String {
    let mut script = Script::new();
    script.stage(Stage::Exec);
    let container = &docker.container;
    docker.require_managed(&mut script, "nothing to run in");
    script.line(&format!(
        "[ \"$state\" = running ] || {{ echo \"the container {container} is $state, not running\" >&2; exit 1; }}"
    ));
    script.line(&format!("echo {OUTPUT_MARK} >&2"));
    let mut exec: Vec<String> = vec!["exec".into()];
    if plan.stdin.is_some() {
        exec.push("-i".into());
    }
    // `docker exec` does not pass our environment into the container: the
    // run's mark goes in by -e, so the node's timer and an interrupt's
    // cleanup find the command itself, not just its docker client.
    exec.extend(["-e".into(), run_var(tag), container.clone()]);
    exec.extend(plan.command.iter().cloned());
    script.line(&quote(&docker.words(&exec)));
    script.text().to_owned()
}

/// Runs the plan's command in every node's managed container.
pub struct ExecJob {
    plan: ExecPlan,
    docker: Docker,
    /// This run's tag (see `exec_script`).
    tag: String,
    /// The run's timeout, which the remote timer enforces.
    limit: Duration,
    /// The writer's input while the run goes (`--follow`'s line records).
    lines: LineRecords,
}

impl ExecJob {
    pub fn new(fleet: &Fleet, plan: ExecPlan) -> ExecJob {
        ExecJob {
            plan,
            docker: Docker::from_config(&fleet.config),
            tag: fleet.tag.clone(),
            limit: fleet.timeout,
            lines: LineRecords::default(),
        }
    }
}

/// exec on a terminal, like `clush -b`: once every node has answered, the
/// nodes grouped by identical output and status, each group shown once.
#[derive(Default)]
struct Grouped {
    groups: Vec<(String, Vec<String>)>,
}

impl View for Grouped {
    fn line(&mut self, record: &Record) -> Option<String> {
        let text = |key: &str| {
            record
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let status = match (record.is_ok(), record.get("exit_code")) {
            (true, _) => "exit 0".to_owned(),
            (false, Some(code)) if !code.is_null() => format!("exit {code}"),
            (false, _) => format!(
                "{}: {}",
                record.stage().map_or("?", |s| s.as_str()),
                record.error().unwrap_or_default()
            ),
        };
        let mut shown = format!("({status})\n{}", text("stdout"));
        let stderr = text("stderr");
        if !stderr.is_empty() {
            shown += &format!("[stderr]\n{stderr}");
        }
        if record.get("stdout_file").is_some() {
            shown += &format!("[in {} and {}]\n", text("stdout_file"), text("stderr_file"));
        }
        let node = record.node().unwrap_or("-").to_owned();
        match self.groups.iter_mut().find(|(output, _)| *output == shown) {
            Some((_, nodes)) => nodes.push(node),
            None => self.groups.push((shown, vec![node])),
        }
        None
    }

    fn end(&mut self) -> Vec<String> {
        // The largest group first; groups as large, by their first node.
        for (_, nodes) in &mut self.groups {
            nodes.sort_by_key(|node| natural_key(node));
        }
        self.groups.sort_by(|(_, a), (_, b)| {
            b.len()
                .cmp(&a.len())
                .then_with(|| natural_key(&a[0]).cmp(&natural_key(&b[0])))
        });
        self.groups
            .iter()
            .map(|(output, nodes)| {
                let names = crate::domain::nodes::fold_for_display(nodes);
                let rule = "-".repeat(names.chars().count().clamp(15, 72));
                format!("{rule}\n{names} {output}").trim_end().to_owned()
            })
            .collect()
    }
}

impl Job for ExecJob {
    /// The command as this node runs it (`{node}`, `{index}` replaced).
    type Context = Vec<String>;

    fn action(&self) -> &'static str {
        "exec"
    }

    fn start(&self, node: &NodeName, _: Option<&Request>) -> Result<Remote<Vec<String>>, Failure> {
        let count = LineCount::default();
        let [stdout, stderr] = match self.plan.follow {
            true => [
                self.lines.sink(node, "stdout", &count, false),
                self.lines.sink(node, "stderr", &count, false),
            ],
            false => output_sinks(self.plan.output_dir.as_ref(), node, self.plan.max_output),
        };
        let command: Vec<String> = self
            .plan
            .command
            .iter()
            .map(|w| expand_placeholders(w, node).map_err(|e| Failure::new(Stage::Input, e)))
            .collect::<Result<_, _>>()?;
        let plan = ExecPlan {
            command: command.clone(),
            ..self.plan.clone()
        };
        let mut remote = Remote::new(exec_script(&self.docker, &plan, &self.tag), command);
        remote.io = SessionIo {
            stdin: self.plan.stdin.clone(),
            payload: Some(PayloadWiring {
                marker: OUTPUT_MARK.into(),
                trailer: killed_line(&self.tag),
                stdout,
                stderr,
            }),
            ..SessionIo::default()
        };
        Ok(remote)
    }

    fn view(&self) -> Option<Box<dyn View>> {
        match self.plan.follow {
            true => Some(Box::new(Prefixed)),
            false => Some(Box::<Grouped>::default()),
        }
    }

    fn connect_output(&self, records: Option<&Sender<Record>>) {
        self.lines.connect(records);
    }

    fn finish(
        &self,
        node: &NodeName,
        command: Vec<String>,
        session: &Session,
    ) -> Result<Fields, Failure> {
        // The command never ran: the script's stderr says why (no
        // container, not running, no docker, no ssh).
        let payload = session.payload(Stage::Exec, "the command did not start")?;
        // The command as this node ran it, then what it printed.
        let streams = Fields::new().with("command", command).and(streams(
            &self.plan,
            node,
            &payload.stdout,
            &payload.stderr,
        ));
        let result = match session.command_end().exited("the command", self.limit) {
            Err(cut) => Err(cut),
            Ok(Some(0)) => Ok(Fields::new().with("exit_code", 0)),
            Ok(Some(code)) => Err(Failure::new(
                Stage::Exec,
                format!("the command exited with status {code}"),
            )
            .with("exit_code", code)),
            Ok(None) => Err(Failure::new(
                Stage::Exec,
                "the session ended without an exit status",
            )),
        };
        match result {
            Ok(fields) => Ok(fields.and(streams)),
            Err(failure) => Err(failure.and(streams)),
        }
    }
}

/// The record's view of the command's output (DIR/NODE.out and .err with
/// --output-dir).
fn streams(plan: &ExecPlan, node: &str, stdout: &Captured, stderr: &Captured) -> Fields {
    match plan.follow {
        // The lines went as records of their own: their counts only.
        true => Fields::new()
            .with("stdout_bytes", stdout.bytes)
            .with("stderr_bytes", stderr.bytes),
        false => output_fields(plan.output_dir.as_ref(), node, stdout, stderr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(command: &[&str], stdin: bool) -> ExecPlan {
        ExecPlan {
            command: command.iter().map(|w| w.to_string()).collect(),
            stdin: stdin.then(|| PathBuf::from("/dev/null")),
            max_output: 10,
            output_dir: None,
            follow: false,
        }
    }

    #[test]
    fn the_command_is_quoted_and_carries_the_run_s_mark() {
        let docker = Docker::default();
        let script = exec_script(
            &docker,
            &plan(&["sh", "-c", "echo $HOME; rm -rf /"], false),
            "t1",
        );
        assert!(
            script
                .contains("docker exec -e 'BALEINE_RUN=t1' container sh -c 'echo $HOME; rm -rf /'"),
            "{script}"
        );
        assert!(script.find(OUTPUT_MARK).unwrap() < script.find("docker exec").unwrap());
        let with_stdin = exec_script(&docker, &plan(&["cat"], true), "t2");
        assert!(with_stdin.contains("docker exec -i -e"));
    }

    #[test]
    fn a_command_is_required() {
        assert!(ExecPlan::new(vec![], None, 10, None).is_err());
        assert!(
            ExecPlan::new(vec!["true".into()], Some("/nonexistent/x".into()), 10, None).is_err()
        );
    }
}
