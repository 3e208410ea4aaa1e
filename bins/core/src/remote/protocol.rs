//! The remote protocol, in one place: the marks a script prints, the session command that runs it under the node's own timer, and how a finished session reads.
//!
//! A script announces each stage on stderr (`@@baleine-stage pull`) before
//! doing it, and prints its results on stdout as `key=value` lines, so one
//! ssh session tells us both what happened and, on failure, where. Every
//! mark is written here and read here ([`decode`]); the transport
//! (`remote::ssh`) and the script builder (`remote::script`) use this
//! module, never the other way round.

use crate::domain::record::{Failure, Stage};
use crate::remote::quote::quote_word;
use std::collections::HashMap;
use std::time::Duration;

/// Starts the stderr line a script prints before each stage.
pub const STAGE_MARK: &str = "@@baleine-stage ";
/// Printed on stderr (with the run's tag) by a node's own timer when the
/// run's time limit passes there and it stops the run's work.
pub const KILLED_MARK: &str = "@@baleine-killed";
/// Starts a stderr line a script sends before it ends (deploy's first node:
/// the digest, as soon as the pull is done), handed over as it comes.
pub const EARLY_MARK: &str = "@@baleine-early ";
/// Printed on stderr when a command's own output starts (baleine-exec's
/// command, baleine-logs' `docker logs`): what follows is the command's.
pub const OUTPUT_MARK: &str = "@@baleine-output";
/// Printed after a failure when it turns out to belong to another stage
/// (a `docker run --pull missing` that failed because the pull did).
pub const RESTAGE_MARK: &str = "@@baleine-restage ";

/// What one line of a script's stderr is, for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark<'a> {
    /// The script begins this stage.
    Stage(Stage),
    /// A line handed over before the script ends (see [`EARLY_MARK`]).
    Early(&'a str),
    /// The node's own timer stopped the run (see [`KILLED_MARK`]).
    Killed,
    /// The failure belongs to this stage (see [`RESTAGE_MARK`]).
    Restage(Stage),
    /// The command's own output starts (see [`OUTPUT_MARK`]).
    Output,
    /// Any other line: the script's words, or a command's.
    Text(&'a str),
}

/// What `line` (without its newline) says. Only the names of our stages
/// count as stages: the line came from a node.
pub fn decode(line: &str) -> Mark<'_> {
    let stage = |name: &str| Stage::from_marker(name.trim());
    if let Some(early) = line.strip_prefix(EARLY_MARK) {
        return Mark::Early(early);
    }
    if line.starts_with(KILLED_MARK) {
        return Mark::Killed;
    }
    if line == OUTPUT_MARK {
        return Mark::Output;
    }
    match (
        line.strip_prefix(STAGE_MARK),
        line.strip_prefix(RESTAGE_MARK),
    ) {
        (Some(name), _) => stage(name).map_or(Mark::Text(line), Mark::Stage),
        (_, Some(name)) => stage(name).map_or(Mark::Text(line), Mark::Restage),
        _ => Mark::Text(line),
    }
}

/// Whether a script's stderr shows it began (it announced a stage).
pub fn began(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|line| matches!(decode(line), Mark::Stage(_)))
}

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

/// The shell loop that kills, on a node, every process whose environment
/// holds one of `vars` (`NAME=value`): the node's root sees them all, the
/// ones in containers included.
pub fn kill_tagged(vars: &[String]) -> String {
    let patterns: Vec<String> = vars
        .iter()
        .map(|v| format!("-e {}", quote_word(v)))
        .collect();
    // Passes until one finds nothing (at most 5): a process forked while a
    // pass reads /proc would escape a single one.
    format!(
        "n=0; while [ $n -lt 5 ]; do n=$((n+1)); found=\n\
         for e in /proc/[0-9]*/environ; do\n\
         if tr '\\0' '\\n' <\"$e\" | grep -qx {}; then p=${{e#/proc/}}; kill -KILL \"${{p%/environ}}\" && found=1; fi\n\
         done 2>/dev/null; [ -n \"$found\" ] || break; done",
        patterns.join(" ")
    )
}

/// The variable that marks every process a run starts on a node.
pub fn run_var(tag: &str) -> String {
    format!("BALEINE_RUN={tag}")
}

/// The line a node's timer prints when it stops the run (see `session_command`).
pub fn killed_line(tag: &str) -> String {
    format!("{KILLED_MARK}-{tag}")
}

/// The command a session runs on a node: `script`, under two guarantees.
/// Everything it starts carries `BALEINE_RUN=<tag>` in its environment
/// (the script's own shell too, by `exec env`), so `cleanup_command` can
/// find and stop it from another session. And a timer of the node's own,
/// started beside it, stops it all after `limit` and says so on stderr,
/// so the time limit holds even when our ssh is gone. The script ending
/// ends the timer (and the timer's sleep: no process is left behind).
pub fn session_command(script: &str, tag: &str, node: &str, limit: Duration) -> String {
    // The timer counts seconds and ends as soon as the script is gone (its
    // pid is the login shell's, kept by exec): a script killed by a signal
    // leaves no timer behind either.
    let timer = format!(
        "trap 'kill $s 2>/dev/null; exit 0' TERM\n\
         i=0\n\
         while [ $i -lt {} ]; do\n\
         kill -0 $BALEINE_WATCHED 2>/dev/null || exit 0\n\
         sleep 1 </dev/null >/dev/null 2>&1 & s=$!\n\
         wait $s\n\
         i=$((i+1))\n\
         done\n\
         echo {} >&2\n{}",
        limit.as_secs().max(1),
        killed_line(tag),
        kill_tagged(&[run_var(tag)])
    );
    let body = format!(
        "trap 'kill $BALEINE_TIMER_PID 2>/dev/null; rm -f \"$BALEINE_STAGE\" \"$BALEINE_STAGE.previous\"' EXIT\n{script}"
    );
    format!(
        "BALEINE_TIMER={tag} BALEINE_WATCHED=$$ sh -c {} </dev/null &\nexec env {} BALEINE_STAGE={} BALEINE_TIMER_PID=$! sh -c {}",
        quote_word(&timer),
        run_var(tag),
        quote_word(&stage_file(tag, node)),
        quote_word(&body)
    )
}

/// Where a script keeps the stage it has reached (besides announcing it),
/// so that the cleanup of a cut session can say how far the node really
/// went after we stopped listening. In /run, which only root may write:
/// no one can plant a link there (elsewhere, or as another user, there is
/// no such file, and a cut record says what we saw).
pub fn stage_file(tag: &str, node: &str) -> String {
    format!("/run/baleine-stage-{tag}-{node}")
}

/// The command that stops, on a node, whatever a run with `tag` left
/// running there: its scripts, their docker clients, the commands they
/// started in containers, and its timers.
pub fn cleanup_command(tag: &str, node: &str) -> String {
    let file = quote_word(&stage_file(tag, node));
    format!(
        "{}
if [ -f {file} ]; then echo \"{STAGE_MARK}$(cat {file})\" >&2; rm -f {file}; fi",
        kill_tagged(&[run_var(tag), format!("BALEINE_TIMER={tag}")])
    )
}

/// What a script printed on success: its `key=value` lines.
pub type Values = HashMap<String, String>;

/// Turns a finished session into the script's values, or the failure with its stage.
pub fn interpret(end: &SessionEnd, timeout: Duration) -> Result<Values, Failure> {
    let mut stage: Option<Stage> = None;
    let mut restage: Option<Stage> = None;
    let mut error_lines: Vec<&str> = Vec::new();
    let mut stopped_by_node = false;
    for line in end.stderr.lines() {
        match decode(line) {
            Mark::Killed => stopped_by_node = true,
            Mark::Stage(at) => {
                stage = Some(at);
                error_lines.clear();
            }
            Mark::Restage(at) => restage = Some(at),
            Mark::Early(_) | Mark::Output => {}
            Mark::Text(line) if !is_progress_noise(line) => error_lines.push(line),
            Mark::Text(_) => {}
        }
    }
    let during = stage.map_or("connect", Stage::as_str);
    // A cut run's record says where it was cut (`during`).
    if stopped_by_node {
        return Err(Failure::timed_out_during(
            during,
            timeout.as_secs(),
            "stopped on the node",
        ));
    }
    match end.cut {
        Some(Cut::Interrupted) => return Err(Failure::interrupted_during(during)),
        Some(Cut::Timeout) => {
            return Err(Failure::timed_out_during(
                during,
                timeout.as_secs(),
                "the node did not answer in time",
            ))
        }
        None => {}
    }
    let error = error_lines.join("\n").trim().to_owned();
    if end.status == Some(0) {
        return Ok(parse_values(&end.stdout));
    }
    let status = end.status.map_or("killed by a signal".to_owned(), |s| {
        format!("exit status {s}")
    });
    let error = if error.is_empty() {
        format!("failed with {status}")
    } else {
        error
    };
    Err(Failure::new(
        restage.or(stage).unwrap_or(Stage::Connect),
        error,
    ))
}

fn parse_values(stdout: &str) -> Values {
    stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Docker's pull progress and usage hints, which would bury the real error.
fn is_progress_noise(line: &str) -> bool {
    let line = line.trim();
    const NOISE: [&str; 9] = [
        "Pulling fs layer",
        "Waiting",
        "Verifying Checksum",
        "Download complete",
        "Pull complete",
        "Already exists",
        "Downloading",
        "Extracting",
        "Pulling from",
    ];
    line.is_empty()
        // ssh falling back from a kept connection that died: not the error.
        || line.starts_with("Control socket connect(")
        // Another tool opened the node's kept connection first: this
        // session goes on without one.
        || (line.starts_with("ControlSocket ") && line.ends_with("disabling multiplexing"))
        || line.starts_with("Unable to find image")
        || line.starts_with("Digest: ")
        || line.starts_with("Status: ")
        || (line.starts_with("Run '") && line.ends_with("for more information"))
        || NOISE
            .iter()
            .any(|n| line.ends_with(n) || line.contains(&format!(": {n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(status: i32, stdout: &str, stderr: &str) -> SessionEnd {
        SessionEnd {
            status: Some(status),
            stdout: stdout.into(),
            stderr: stderr.into(),
            payload: None,
            cut: None,
        }
    }

    const T: Duration = Duration::from_secs(30);

    #[test]
    fn success_yields_the_printed_values() {
        let values = interpret(
            &end(
                0,
                "removed=true\ncontainer=abc\n",
                "@@baleine-stage remove\n",
            ),
            T,
        )
        .unwrap();
        assert_eq!(values["removed"], "true");
        assert_eq!(values["container"], "abc");
    }

    #[test]
    fn no_stage_reached_is_a_connect_failure_with_ssh_words() {
        let failure = interpret(
            &end(
                255,
                "",
                "ssh: connect to host 127.0.1.3 port 22: Connection refused\n",
            ),
            T,
        )
        .unwrap_err();
        assert_eq!(failure.stage, Stage::Connect);
        assert_eq!(
            failure.error,
            "ssh: connect to host 127.0.1.3 port 22: Connection refused"
        );
    }

    #[test]
    fn failure_stage_is_the_last_marker_and_noise_is_dropped() {
        let stderr = "@@baleine-stage remove\n@@baleine-stage pull\nUsing default tag: latest\n\
                      Error response from daemon: manifest for nosuch:latest not found\n";
        let failure = interpret(&end(1, "removed=false\n", stderr), T).unwrap_err();
        assert_eq!(failure.stage, Stage::Pull);
        assert_eq!(failure.error, "Using default tag: latest\nError response from daemon: manifest for nosuch:latest not found");
    }

    #[test]
    fn a_run_that_failed_for_lack_of_the_image_is_a_pull_failure() {
        let stderr = "@@baleine-stage run\nUnable to find image 'x@sha256:00' locally\n\
                      docker: Error response from daemon: connection refused.\n\nRun 'docker run --help' for more information\n\
                      @@baleine-restage pull\n";
        let failure = interpret(&end(1, "", stderr), T).unwrap_err();
        assert_eq!(failure.stage, Stage::Pull);
        assert_eq!(
            failure.error,
            "docker: Error response from daemon: connection refused."
        );
    }

    #[test]
    fn cut_sessions_say_timeout_or_interrupted_and_where() {
        let mut cut = end(255, "", "@@baleine-stage pull\n");
        cut.cut = Some(Cut::Timeout);
        let failure = interpret(&cut, T).unwrap_err();
        assert_eq!(
            (failure.stage, failure.error.as_str()),
            (
                Stage::Timeout,
                "no result after 30 s (during pull): the node did not answer in time"
            )
        );
        cut.cut = Some(Cut::Interrupted);
        assert_eq!(interpret(&cut, T).unwrap_err().stage, Stage::Interrupted);
    }

    #[test]
    fn the_node_s_timer_makes_a_timeout_record() {
        let failure = interpret(
            &end(1, "", "@@baleine-stage pull\nKilled\n@@baleine-killed-t1\n"),
            T,
        )
        .unwrap_err();
        assert_eq!(failure.stage, Stage::Timeout);
        assert_eq!(
            failure.error,
            "no result after 30 s (during pull): stopped on the node"
        );
    }

    #[test]
    fn a_session_command_tags_its_script_and_times_it() {
        let command = session_command("echo hi", "t1", "fit01", Duration::from_secs(7));
        assert!(command.contains(
            "exec env BALEINE_RUN=t1 BALEINE_STAGE=/run/baleine-stage-t1-fit01 BALEINE_TIMER_PID=$! sh -c"
        ));
        assert!(command.contains("while [ $i -lt 7 ]"));
        let cleanup = cleanup_command("t1", "fit01");
        assert!(cleanup.contains("-e 'BALEINE_RUN=t1' -e 'BALEINE_TIMER=t1'"));
        // It says the stage the node really reached, after our cut.
        assert!(cleanup.contains("echo \"@@baleine-stage $(cat /run/baleine-stage-t1-fit01)\" >&2"));
    }

    #[test]
    fn every_mark_is_decoded_here_and_only_our_stage_names_count() {
        assert_eq!(decode("@@baleine-stage pull"), Mark::Stage(Stage::Pull));
        assert_eq!(
            decode("@@baleine-stage rm -rf"),
            Mark::Text("@@baleine-stage rm -rf")
        );
        assert_eq!(decode("@@baleine-restage pull"), Mark::Restage(Stage::Pull));
        assert_eq!(decode("@@baleine-killed-t1"), Mark::Killed);
        assert_eq!(decode("@@baleine-early digest=x"), Mark::Early("digest=x"));
        assert_eq!(decode(OUTPUT_MARK), Mark::Output);
        assert_eq!(decode("Error: boom"), Mark::Text("Error: boom"));
        assert!(began("ssh: warning\n@@baleine-stage remove\n"));
        assert!(!began("ssh: connect refused\n"));
    }
}
