//! `baleine-logs`: the managed container's `docker logs` from every node, whole or followed line by line.

use crate::domain::nodes::NodeName;
use crate::domain::record::{Failure, Fields, Record, Stage};
use crate::framework::args::MAX_SECONDS;
use crate::framework::cli::Tool;
use crate::framework::fleet::{
    output_fields, output_sinks, Fleet, Job, LineCount, LineRecords, OutputDir, Remote, Session,
};
use crate::framework::input::Request;
use crate::framework::output::{Prefixed, View};
use crate::framework::UsageError;
use crate::remote::protocol::{killed_line, OUTPUT_MARK};
use crate::remote::quote::quote;
use crate::remote::script::{Docker, Script};
use crate::remote::ssh::{PayloadWiring, SessionIo};
use crossbeam::channel::Sender;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

crate::fleet_args! {
    /// Get the logs of the managed container of each node: one JSON record per
    /// node with its stdout and stderr, or with --follow one JSON record per log
    /// line as the lines arrive.
    #[argh(
        example = "baleine-logs 1-5 --tail 20 | jq -r '.stdout'",
        example = "baleine-logs -a --since 10m --output-dir logs/",
        example = "baleine-logs 1-3 --follow | jq -c 'select(.stream == \"stderr\")'",
        note = "The logs of an exited container are there too (it is the one the node kept). \
                With --follow, each line is a record {{\"node\", \"stream\", \"line\"}} written as it \
                arrives, in arrival order, until Ctrl-C (exit 130) or until every container has \
                stopped; each node then gets its record (lines, byte counts). On a terminal the \
                lines show as `fit07 | line`. --follow runs for up to 30 days unless --timeout says less; \
                a reader that goes away (`| head`) ends it quietly.",
        error_code(1, "some node failed (no container, no docker, unreachable)"),
        error_code(2, "usage, configuration or node-list error; nothing was done"),
        error_code(130, "interrupted; every node still got a record (with --follow, Ctrl-C is its end: 0)"),
        error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
    )]
    pub struct LogsArgs {
        timeout: (120, "give up on a node after this long: seconds, or 90s, 5m, 1h30m (default: 120)"),
        /// only the lines since this time: 10m, 2h, or a timestamp (2026-11-23T15:00:00Z)
        #[argh(option, arg_name = "TIME")]
        pub since: Option<String>,
        /// only the last N lines of each node (default: all)
        #[argh(option, arg_name = "N")]
        pub tail: Option<u64>,
        /// keep streaming new lines, one record each, until Ctrl-C or every container stops
        #[argh(switch, short = 'f')]
        pub follow: bool,
        /// each line's time as Docker kept it: with --follow a line record's ts
        /// (RFC 3339, sub-seconds), else at the start of each line
        #[argh(switch, short = 't')]
        pub timestamps: bool,
        /// bytes of stdout and of stderr kept in each record (default: 65536)
        #[argh(option, arg_name = "BYTES", default = "64 * 1024")]
        pub max_output: usize,
        /// write each node's whole logs to DIR/<node>.stdout and DIR/<node>.stderr instead
        #[argh(option, arg_name = "DIR")]
        pub output_dir: Option<PathBuf>,
    }
}

impl Tool for LogsArgs {
    const NAME: &'static str = "baleine-logs";

    fn run(self, _: Vec<std::ffi::OsString>) -> Result<ExitCode, UsageError> {
        if let Some(since) = &self.since {
            check_since(since)?;
        }
        if self.follow && self.output_dir.is_some() {
            return Err(UsageError(
                "--follow writes records as lines come; --output-dir is for whole logs".into(),
            ));
        }
        let output_dir = match &self.output_dir {
            Some(dir) => Some(OutputDir::create(dir, ["stdout", "stderr"])?),
            None => None,
        };
        let mut options = self.fleet_options();
        // Following has no end of its own: the user's Ctrl-C is.
        if self.follow && options.timeout.is_none() {
            options.timeout = Some(MAX_SECONDS);
        }
        let fleet = Fleet::prepare(options)?;
        let job = LogsJob {
            docker: Docker::from_config(&fleet.config),
            tag: fleet.tag.clone(),
            since: self.since,
            tail: self.tail,
            follow: self.follow,
            timestamps: self.timestamps,
            max_output: self.max_output,
            output_dir,
            lines: LineRecords::default(),
        };
        Ok(fleet.run(&job))
    }
}

/// `--since` goes to docker as one quoted word; refuse what docker would
/// only reject later on every node.
fn check_since(since: &str) -> Result<(), UsageError> {
    let valid = !since.is_empty()
        && !since.starts_with('-')
        && since
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '+' | '-'));
    match valid {
        true => Ok(()),
        false => Err(UsageError(format!(
            "--since {since:?}: a duration (10m, 2h) or a timestamp (2026-11-23T15:00:00Z)"
        ))),
    }
}

struct LogsJob {
    docker: Docker,
    tag: String,
    since: Option<String>,
    tail: Option<u64>,
    follow: bool,
    /// `docker logs --timestamps`: each line record gets its `ts`.
    timestamps: bool,
    max_output: usize,
    output_dir: Option<OutputDir>,
    /// The writer's input while the run goes (for --follow's line records).
    lines: LineRecords,
}

impl LogsJob {
    /// The script: the container must exist (in any state: an exited
    /// container's logs are what one wants to read), then its logs.
    fn script(&self) -> String {
        let mut script = Script::new();
        script.stage(Stage::Logs);
        let container = &self.docker.container;
        self.docker.require_managed(&mut script, "no logs");
        script.line(&format!("echo {OUTPUT_MARK} >&2"));
        let mut logs: Vec<String> = vec!["logs".into()];
        if let Some(since) = &self.since {
            logs.extend(["--since".into(), since.clone()]);
        }
        if let Some(tail) = self.tail {
            logs.extend(["--tail".into(), tail.to_string()]);
        }
        if self.follow {
            logs.push("--follow".into());
        }
        if self.timestamps {
            logs.push("--timestamps".into());
        }
        logs.push(container.clone());
        script.line(&format!("exec {}", quote(&self.docker.words(&logs))));
        script.text().to_owned()
    }
}

impl Job for LogsJob {
    type Context = LineCount;

    fn action(&self) -> &'static str {
        "logs"
    }

    fn start(&self, node: &NodeName, _: Option<&Request>) -> Result<Remote<LineCount>, Failure> {
        let count = LineCount::default();
        let [stdout, stderr] = match self.follow {
            true => [
                self.lines.sink(node, "stdout", &count, self.timestamps),
                self.lines.sink(node, "stderr", &count, self.timestamps),
            ],
            false => output_sinks(self.output_dir.as_ref(), node, self.max_output),
        };
        let mut remote = Remote::new(self.script(), count);
        remote.io = SessionIo {
            payload: Some(PayloadWiring {
                marker: OUTPUT_MARK.into(),
                trailer: killed_line(&self.tag),
                stdout,
                stderr,
            }),
            ends_with_reader: self.follow,
            ..SessionIo::default()
        };
        Ok(remote)
    }

    fn finish(
        &self,
        node: &NodeName,
        lines: LineCount,
        session: &Session,
    ) -> Result<Fields, Failure> {
        let payload = session.payload(Stage::Logs, "docker logs did not start")?;
        let fields = match self.follow {
            true => Fields::new()
                .with("lines", lines.load(Ordering::Relaxed))
                .with("stdout_bytes", payload.stdout.bytes)
                .with("stderr_bytes", payload.stderr.bytes),
            false => output_fields(
                self.output_dir.as_ref(),
                node,
                &payload.stdout,
                &payload.stderr,
            ),
        };
        let end = session.command_end();
        // Following until told to stop is --follow's job: Ctrl-C is its end.
        if self.follow && end == crate::framework::fleet::CommandEnd::Interrupted {
            return Ok(fields.with("followed_until", "interrupted"));
        }
        match end.exited("docker logs", session.timeout) {
            Err(cut) => Err(cut.and(fields)),
            Ok(Some(0)) => Ok(fields),
            Ok(status) => Err(Failure::new(
                Stage::Logs,
                format!(
                    "docker logs exited with status {}",
                    status.map_or("?".into(), |s| s.to_string())
                ),
            )
            .and(fields)),
        }
    }

    fn view(&self) -> Option<Box<dyn View>> {
        Some(Box::new(Prefixed))
    }

    fn interrupt_is_the_end(&self) -> bool {
        self.follow
    }

    fn connect_output(&self, records: Option<&Sender<Record>>) {
        self.lines.connect(records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(follow: bool) -> LogsJob {
        LogsJob {
            docker: Docker::default(),
            tag: "t".into(),
            since: Some("10m".into()),
            tail: Some(5),
            follow,
            timestamps: false,
            max_output: 10,
            output_dir: None,
            lines: LineRecords::default(),
        }
    }

    #[test]
    fn the_script_reads_the_managed_container_s_logs() {
        let script = job(true).script();
        assert!(
            script.contains("exec docker logs --since 10m --tail 5 --follow container"),
            "{script}"
        );
        assert!(script.find(OUTPUT_MARK).unwrap() < script.find("docker logs").unwrap());
        assert!(!job(false).script().contains("--follow"));
    }

    #[test]
    fn a_timestamped_line_gives_its_time_and_its_text() {
        use crate::framework::fleet::timestamped;
        assert_eq!(
            timestamped("2026-12-06T07:25:20.128625449Z hello world"),
            Some(("2026-12-06T07:25:20.128625449Z", "hello world"))
        );
        assert_eq!(
            timestamped("2026-12-06T07:25:20Z"),
            Some(("2026-12-06T07:25:20Z", ""))
        );
        assert_eq!(timestamped("hello world"), None);
    }

    #[test]
    fn since_is_a_duration_or_a_timestamp() {
        for good in [
            "10m",
            "2h",
            "2026-11-23T15:00:00Z",
            "1700000000",
            "2026-11-23T15:00:00+01:00",
        ] {
            assert!(check_since(good).is_ok(), "{good}");
        }
        for bad in ["", "-1", "10 m", "$(x)", "a;b"] {
            assert!(check_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_show_with_their_node_on_a_terminal() {
        let mut view = Prefixed;
        assert_eq!(
            view.line(&Record::log_line("fit07", "stdout", "hello")),
            Some("fit07 | hello".into())
        );
        let record = Record::success("fit02", "logs")
            .with("stdout", "a\nb\n")
            .with("stderr", "");
        assert_eq!(view.line(&record), Some("fit02 | a\nfit02 | b".into()));
    }
}
