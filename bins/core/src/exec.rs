//! baleine-exec's job: run one command inside the managed container of every node, and report each outcome.
//!
//! The per-node timeout must stop the command itself, not just our ssh: a
//! `docker exec` outlives its client. So the remote script tags the
//! command's environment and, when its own timer fires, kills every process
//! of the node carrying that tag (the node's root sees the container's
//! processes), then says so on a trailer line we take out of the output.

use crate::cli::Fleet;
use crate::record::{Failure, Record, Stage};
use crate::remote::{interpret, quote, quote_word, Docker, Script};
use crate::transport::{Captured, Cut, PayloadWiring, SessionIo, Sink};
use crate::UsageError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The line after which stderr is the command's, not the script's.
const OUTPUT_MARK: &str = "@@baleine-output";
/// Our ssh outlives the remote timer by this much, so the remote side kills
/// the command and says so before we give up on the session.
const GRACE: Duration = Duration::from_secs(5);

/// Everything about one exec that is the same on every node.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    pub command: Vec<String>,
    /// Fed to the command's stdin on every node.
    pub stdin: Option<PathBuf>,
    /// Bytes of stdout and of stderr kept in a record.
    pub max_output: usize,
    /// Write the full streams to DIR/<node>.out and .err instead.
    pub output_dir: Option<PathBuf>,
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
        if let Some(dir) = &output_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| UsageError(format!("--output-dir {}: {e}", dir.display())))?;
        }
        Ok(ExecPlan {
            command,
            stdin,
            max_output,
            output_dir,
        })
    }
}

/// A tag no other run shares, naming this run's processes on the nodes.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        crate::clock::now_secs()
    )
}

/// The remote script: check the managed container runs, start a timer that
/// kills the tagged command after `limit`, then run it in the foreground (so
/// it keeps our stdin) and exit with its status.
pub fn exec_script(docker: &Docker, plan: &ExecPlan, limit: Duration, tag: &str) -> String {
    let mut script = Script::new();
    script.stage(Stage::Exec);
    let container = &docker.container;
    let state = quote(&docker.words(&["inspect", "--format", "{{.State.Status}}", container]));
    let missing = quote_word(&format!(
        "no container named {container} on this node: nothing to run in"
    ));
    script.line(&format!(
        "state=$({state} 2>&1) || {{ case $state in *'No such'*) echo {missing} >&2 ;; \
         *) printf '%s\\n' \"$state\" >&2 ;; esac; exit 1; }}\n\
         [ \"$state\" = running ] || {{ echo \"the container {container} is $state, not running\" >&2; exit 1; }}"
    ));
    let env_tag = format!("BALEINE_EXEC_TAG={tag}");
    // The timer's sleep holds none of our pipes, so killing the timer when
    // the command ends lets the session close at once.
    script.line(&format!(
        "( sleep {} >/dev/null 2>&1 </dev/null & wait $!\n\
           echo {} >&2\n\
           for e in /proc/[0-9]*/environ; do\n\
             if tr '\\0' '\\n' <\"$e\" | grep -qx {}; then p=${{e#/proc/}}; kill -KILL \"${{p%/environ}}\"; fi\n\
           done 2>/dev/null ) &\n\
         timer=$!",
        limit.as_secs().max(1),
        quote_word(&trailer(tag)),
        quote_word(&env_tag),
    ));
    script.line(&format!("echo {OUTPUT_MARK} >&2"));
    let mut exec: Vec<String> = vec!["exec".into()];
    if plan.stdin.is_some() {
        exec.push("-i".into());
    }
    exec.extend(["-e".into(), env_tag, container.clone()]);
    exec.extend(plan.command.iter().cloned());
    script.line(&format!(
        "{}\nstatus=$?\nkill $timer 2>/dev/null\nexit $status",
        quote(&docker.words(&exec))
    ));
    script.text().to_owned()
}

fn trailer(tag: &str) -> String {
    format!("@@baleine-killed-{tag}")
}

/// Runs the plan's command in every node's managed container.
pub fn run(fleet: Fleet, plan: ExecPlan) -> ExitCode {
    let docker = Docker::from_config(&fleet.config);
    let tag = run_tag();
    let script = exec_script(&docker, &plan, fleet.timeout, &tag);
    let session_timeout = fleet.timeout + GRACE;
    fleet.run("exec", &|node| {
        if fleet.dry_run {
            return fleet.dry_run_record(node, "exec", &script);
        }
        let sink = |suffix: &str| match &plan.output_dir {
            Some(dir) => Sink::File(dir.join(format!("{node}.{suffix}"))),
            None => Sink::Memory(plan.max_output),
        };
        let io = SessionIo {
            stdin: plan.stdin.clone(),
            payload: Some(PayloadWiring {
                marker: OUTPUT_MARK.into(),
                trailer: trailer(&tag),
                stdout: sink("out"),
                stderr: sink("err"),
            }),
        };
        let end = fleet.ssh.run_with(node, &script, session_timeout, &io);
        let payload = end.payload.clone().unwrap_or_default();
        if !payload.started {
            // The command never ran: the script's stderr says why (no
            // container, not running, no docker, no ssh).
            let failure = interpret(&end, fleet.timeout)
                .err()
                .unwrap_or_else(|| Failure::new(Stage::Exec, "the command did not start"));
            return Record::failure(Some(node), "exec", &failure);
        }
        let failed = |stage: Stage, error: String| {
            Record::failure(Some(node), "exec", &Failure::new(stage, error))
        };
        let mut record = match (payload.trailer_seen, end.cut, end.status) {
            (true, _, _) | (_, Some(Cut::Timeout), _) => failed(
                Stage::Timeout,
                format!(
                    "no result after {} s: command killed",
                    fleet.timeout.as_secs()
                ),
            ),
            (_, Some(Cut::Interrupted), _) => failed(
                Stage::Interrupted,
                "interrupted while the command ran".into(),
            ),
            (_, None, Some(0)) => Record::success(node, "exec").with("exit_code", 0),
            (_, None, Some(code)) => failed(
                Stage::Exec,
                format!("the command exited with status {code}"),
            )
            .with("exit_code", code),
            (_, None, None) => failed(
                Stage::Exec,
                "the session ended without an exit status".into(),
            ),
        };
        add_streams(&mut record, &plan, node, &payload.stdout, &payload.stderr);
        record
    })
}

fn add_streams(
    record: &mut Record,
    plan: &ExecPlan,
    node: &str,
    stdout: &Captured,
    stderr: &Captured,
) {
    match &plan.output_dir {
        Some(dir) => {
            record.set(
                "stdout_file",
                dir.join(format!("{node}.out")).display().to_string(),
            );
            record.set(
                "stderr_file",
                dir.join(format!("{node}.err")).display().to_string(),
            );
        }
        None => {
            record.set("stdout", stdout.text.as_str());
            record.set("stderr", stderr.text.as_str());
        }
    }
    record.set("stdout_bytes", stdout.bytes);
    record.set("stderr_bytes", stderr.bytes);
    record.set("truncated", stdout.truncated || stderr.truncated);
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
        }
    }

    #[test]
    fn the_command_is_quoted_tagged_and_timed() {
        let docker = Docker::default();
        let script = exec_script(
            &docker,
            &plan(&["sh", "-c", "echo $HOME; rm -rf /"], false),
            Duration::from_secs(30),
            "t1",
        );
        assert!(
            script.contains(
                "docker exec -e 'BALEINE_EXEC_TAG=t1' container sh -c 'echo $HOME; rm -rf /'"
            ),
            "{script}"
        );
        assert!(script.contains("sleep 30 "));
        assert!(script.contains("grep -qx 'BALEINE_EXEC_TAG=t1'"));
        assert!(script.find(OUTPUT_MARK).unwrap() < script.find("docker exec").unwrap());
        let with_stdin = exec_script(&docker, &plan(&["cat"], true), Duration::from_secs(5), "t2");
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
