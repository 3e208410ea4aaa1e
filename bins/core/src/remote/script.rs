//! Where every remote command is built: one POSIX shell script per node and session, every word quoted.
//!
//! A script announces each stage on stderr (`@@baleine-stage pull`) before
//! doing it, and prints its results on stdout as `key=value` lines, so one
//! ssh session tells us both what happened and, on failure, where.

use crate::domain::record::{Failure, Stage};
use crate::remote::ssh::{Cut, SessionEnd};
use std::collections::HashMap;
use std::time::Duration;

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
const RESTAGE_MARK: &str = "@@baleine-restage ";

/// Quotes each word (see `quote_word`) and joins them with spaces.
pub fn quote(words: &[String]) -> String {
    words
        .iter()
        .map(|word| quote_word(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes one word so that sh, dash, bash and zsh all read it back byte for
/// byte, whatever their options. Only words made of letters, digits and
/// `,._+:@%/-` stay bare; everything else goes in single quotes, inside
/// which no shell expands anything (shell-words left `{a,b}` bare, which
/// bash brace-expands, and `=cmd`, which zsh expands).
pub fn quote_word(word: &str) -> String {
    let bare = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b",._+:@%/-".contains(&b));
    if bare {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
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
pub fn session_command(script: &str, tag: &str, limit: Duration) -> String {
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
    let body = format!("trap 'kill $BALEINE_TIMER_PID 2>/dev/null' EXIT\n{script}");
    format!(
        "BALEINE_TIMER={tag} BALEINE_WATCHED=$$ sh -c {} </dev/null &\nexec env {} BALEINE_TIMER_PID=$! sh -c {}",
        quote_word(&timer),
        run_var(tag),
        quote_word(&body)
    )
}

/// The command that stops, on a node, whatever a run with `tag` left
/// running there: its scripts, their docker clients, the commands they
/// started in containers, and its timers.
pub fn cleanup_command(tag: &str) -> String {
    kill_tagged(&[run_var(tag), format!("BALEINE_TIMER={tag}")])
}

/// A remote script under construction.
#[derive(Debug, Clone)]
pub struct Script {
    text: String,
}

impl Default for Script {
    fn default() -> Self {
        Script::new()
    }
}

impl Script {
    pub fn new() -> Script {
        Script {
            text: format!("m() {{ echo \"{STAGE_MARK}$1\" >&2; }}\n"),
        }
    }

    pub fn stage(&mut self, stage: Stage) -> &mut Script {
        self.text.push_str(&format!("m {}\n", stage.as_str()));
        self
    }

    /// A command that must succeed, or the script stops with its error.
    pub fn must(&mut self, words: &[String]) -> &mut Script {
        self.text.push_str(&format!("{} || exit 1\n", quote(words)));
        self
    }

    /// A line of our own shell text. Anything coming from a user must go
    /// through `quote` first: callers pass only fixed text and quoted words.
    pub fn line(&mut self, text: &str) -> &mut Script {
        self.text.push_str(text);
        self.text.push('\n');
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The docker engine on a node, as the configuration names it.
#[derive(Debug, Clone)]
pub struct Docker {
    /// The engine command (`DOCKER`, default `docker`), split into words.
    pub command: Vec<String>,
    /// The one container baleine manages (`CONTAINER_NAME`).
    pub container: String,
}

/// The configuration's defaults: `docker`, managing the container `container`.
impl Default for Docker {
    fn default() -> Self {
        Docker {
            command: vec!["docker".into()],
            container: "container".into(),
        }
    }
}

impl Docker {
    pub fn from_config(config: &crate::domain::config::Config) -> Docker {
        Docker {
            command: config.docker.clone(),
            container: config.container_name.clone(),
        }
    }

    /// The docker command line with these arguments, ready for `quote`.
    pub fn words<S: AsRef<str>>(&self, args: &[S]) -> Vec<String> {
        let mut words = self.command.clone();
        words.extend(args.iter().map(|a| a.as_ref().to_owned()));
        words
    }

    /// Removes the managed container, if any, and prints `removed=true|false`.
    /// Only this container, by name: never a prune, never anything else.
    /// `docker rm -f` of a missing container fails on older CLIs and succeeds
    /// on newer ones, both saying "No such container".
    pub fn remove_managed(&self, script: &mut Script, stop_timeout: Option<u64>) {
        script.stage(Stage::Remove);
        if let Some(seconds) = stop_timeout {
            let stop = self.words(&["stop", "-t", &seconds.to_string(), &self.container]);
            script.line(&format!("{} >/dev/null 2>&1", quote(&stop)));
        }
        let rm = quote(&self.words(&["rm", "-f", &self.container]));
        script.line(&format!(
            "out=$({rm} 2>&1); rc=$?\n\
             case $out in\n\
             *'No such container'*) echo removed=false ;;\n\
             *) [ $rc -eq 0 ] || {{ printf '%s\\n' \"$out\" >&2; exit 1; }}; echo removed=true ;;\n\
             esac"
        ));
    }

    /// Stops the script with a clear error when the managed container does
    /// not exist (`then`: what that means for the tool, e.g. "no logs");
    /// leaves its state (`running`, `exited`...) in `$state`.
    pub fn require_managed(&self, script: &mut Script, then: &str) {
        let state =
            quote(&self.words(&["inspect", "--format", "{{.State.Status}}", &self.container]));
        let missing = quote_word(&format!(
            "no container named {} on this node: {then}",
            self.container
        ));
        script.line(&format!(
            "state=$({state} 2>&1) || {{ case $state in *'No such'*) echo {missing} >&2 ;; \
             *) printf '%s\\n' \"$state\" >&2 ;; esac; exit 1; }}"
        ));
    }

    /// Runs `run_args` (a full `docker run` argument list) and prints
    /// `container=<id>`. If it fails and `image` is absent afterwards, the
    /// failure is the pull's.
    pub fn run_container(&self, script: &mut Script, run_args: &[String], image: &str) {
        script.stage(Stage::Run);
        let run = quote(&self.words(run_args));
        let inspect = quote(&self.words(&["image", "inspect", image]));
        script.line(&format!(
            "id=$({run}) || {{ {inspect} >/dev/null 2>&1 || echo '{RESTAGE_MARK}pull' >&2; exit 1; }}\n\
             echo \"container=$id\""
        ));
    }
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
        if line.starts_with(KILLED_MARK) {
            stopped_by_node = true;
        } else if let Some(name) = line.strip_prefix(STAGE_MARK) {
            stage = Stage::from_marker(name.trim());
            error_lines.clear();
        } else if let Some(name) = line.strip_prefix(RESTAGE_MARK) {
            restage = Stage::from_marker(name.trim());
        } else if !is_progress_noise(line) {
            error_lines.push(line);
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
    fn hostile_words_stay_single_words() {
        let docker = Docker::default();
        let mut script = Script::new();
        script.must(&docker.words(&[
            "run",
            "-e",
            "MSG=hello world; rm -rf /",
            "busybox",
            "$(id)",
            "`id`",
            "a'b",
        ]));
        let line = script.text().lines().nth(1).unwrap();
        let words = shell_words::split(line.trim_end_matches(" || exit 1")).unwrap();
        assert!(line.contains("'$(id)' '`id`' 'a'\\''b'"), "{line}");
        assert_eq!(
            words,
            [
                "docker",
                "run",
                "-e",
                "MSG=hello world; rm -rf /",
                "busybox",
                "$(id)",
                "`id`",
                "a'b"
            ]
        );
    }

    #[test]
    fn braces_tildes_globs_and_equals_are_quoted() {
        for word in [
            "{a,b}", "x{1..3}", "~root", "*", "=ls", "a b", "", "!x", "[ab]", "\n",
        ] {
            let quoted = quote_word(word);
            assert!(
                quoted.starts_with('\'') && quoted.ends_with('\''),
                "{word:?} -> {quoted}"
            );
        }
        for word in [
            "busybox", "fit01", "/var/lib", "a.b-c_d", "x:y", "100%", "a,b", "u@h",
        ] {
            assert_eq!(quote_word(word), word);
        }
    }

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
        let command = session_command("echo hi", "t1", Duration::from_secs(7));
        assert!(command.contains("exec env BALEINE_RUN=t1 BALEINE_TIMER_PID=$! sh -c"));
        assert!(command.contains("while [ $i -lt 7 ]"));
        assert!(cleanup_command("t1").contains("-e 'BALEINE_RUN=t1' -e 'BALEINE_TIMER=t1'"));
    }

    #[test]
    fn remove_step_only_ever_names_the_managed_container() {
        let docker = Docker::default();
        let mut script = Script::new();
        docker.remove_managed(&mut script, Some(5));
        let text = script.text();
        assert!(text.contains("docker stop -t 5 container"));
        assert!(text.contains("docker rm -f container"));
        assert!(!text.contains("prune"));
    }
}
