//! The JSON record every tool writes, one line per node: built here so all tools agree on its shape.

use serde_json::Value;
use std::fmt;

/// Where a node's work failed; the `stage` field of a failed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Input,
    Connect,
    /// Building an image (baleine-build).
    Build,
    Bootstrap,
    Remove,
    Pull,
    Run,
    Inspect,
    /// The container did not become ready (deploy --wait).
    Ready,
    Exec,
    /// Reading the container's logs (baleine-logs).
    Logs,
    /// Copying files in or out (baleine-cp).
    Copy,
    /// Another tag names the image a deletion would remove (baleine-rmi).
    Referenced,
    /// The registry did not delete (baleine-rmi).
    Delete,
    Commit,
    /// The name to save as is taken (baleine-save without --force).
    Exists,
    Push,
    Verify,
    Timeout,
    Interrupted,
    /// A bug of ours (a panic), caught so the node still gets its record.
    Internal,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::Connect => "connect",
            Stage::Build => "build",
            Stage::Bootstrap => "bootstrap",
            Stage::Remove => "remove",
            Stage::Pull => "pull",
            Stage::Run => "run",
            Stage::Inspect => "inspect",
            Stage::Ready => "ready",
            Stage::Exec => "exec",
            Stage::Logs => "logs",
            Stage::Copy => "copy",
            Stage::Referenced => "referenced",
            Stage::Delete => "delete",
            Stage::Commit => "commit",
            Stage::Exists => "exists",
            Stage::Push => "push",
            Stage::Verify => "verify",
            Stage::Timeout => "timeout",
            Stage::Interrupted => "interrupted",
            Stage::Internal => "internal",
        }
    }

    /// The stage named by a remote script's marker (see `remote`).
    pub fn from_marker(name: &str) -> Option<Stage> {
        [
            Stage::Build,
            Stage::Remove,
            Stage::Pull,
            Stage::Run,
            Stage::Inspect,
            Stage::Ready,
            Stage::Exec,
            Stage::Logs,
            Stage::Copy,
            Stage::Commit,
            Stage::Push,
            Stage::Verify,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fields a job puts in a node's record, after `node`, `action` and `ok`
/// (and `stage`, `error` for a failure), in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    /// Adds (or replaces) a field.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Fields {
        self.set(key, value);
        self
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        debug_assert!(!HEAD.contains(&key), "{key} is the record's kind's");
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// These fields followed by `more`'s.
    pub fn and(mut self, more: Fields) -> Fields {
        for (key, value) in more.0 {
            self.set(key, value);
        }
        self
    }
}

/// Why a node failed: the stage, the real error text (trimmed), and what
/// the job still has to say about the node (e.g. where a commit was left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub error: String,
    pub fields: Fields,
}

impl Failure {
    pub fn new(stage: Stage, error: impl Into<String>) -> Failure {
        Failure {
            stage,
            error: error.into(),
            fields: Fields::new(),
        }
    }

    /// A node the run stopped before its work began: interrupted, or
    /// because the input was refused (see `stop::refuse_input`).
    pub fn not_started() -> Failure {
        match crate::domain::stop::input_refused() {
            Some(why) => Failure::new(Stage::Input, format!("not started: {why}")),
            None => Failure::new(Stage::Interrupted, "interrupted before starting"),
        }
    }

    /// A node's work cut by an interrupt while at stage `during`, which the
    /// record also carries as a field of its own (for a job, or jq).
    pub fn interrupted_during(during: &str) -> Failure {
        Failure::new(Stage::Interrupted, format!("interrupted during {during}"))
            .with("during", during.to_owned())
    }

    /// A node's work cut by its time limit (`seconds`) while at stage
    /// `during`; `how` says how it ended (stopped on the node, ...).
    pub fn timed_out_during(during: &str, seconds: u64, how: &str) -> Failure {
        Failure::new(
            Stage::Timeout,
            format!("no result after {seconds} s (during {during}): {how}"),
        )
        .with("during", during.to_owned())
    }

    /// Adds a field to the failure's record.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Failure {
        self.fields.set(key, value);
        self
    }

    /// Adds these fields to the failure's record.
    pub fn and(mut self, fields: Fields) -> Failure {
        self.fields = self.fields.and(fields);
        self
    }

    /// Puts `first` ahead of the failure's own fields (see `Record::after`).
    pub fn after(mut self, first: Fields) -> Failure {
        self.fields = first.and(self.fields);
        self
    }
}

/// The most of an error's text a record carries. A node may send up to the
/// capture's 16 MiB of stderr; each failed record is also kept for the
/// summary, so a fleet of such nodes would hold gigabytes.
pub const MAX_ERROR: usize = 64 * 1024;

/// `error`, or its beginning and its end (where docker says what went
/// wrong) when longer than [`MAX_ERROR`], with how much was left out.
pub fn bounded_error(error: &str) -> String {
    if error.len() <= MAX_ERROR {
        return error.to_owned();
    }
    let floor = |mut at: usize| {
        while !error.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let head = floor(MAX_ERROR / 4);
    let tail = floor(error.len() - (MAX_ERROR - MAX_ERROR / 4));
    format!(
        "{}\n… ({} bytes left out) …\n{}",
        &error[..head],
        tail - head,
        &error[tail..]
    )
}

/// The fields a record's kind writes first: a job's own field of that name
/// would be written twice.
const HEAD: [&str; 5] = ["node", "action", "ok", "stage", "error"];

/// What a record is: its first fields, and whether the writer counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The one record of a node (or of a build, of a tag): `node`,
    /// `action`, `ok` first, and for a failure `stage` and `error`. Counted
    /// for the summary and the exit status.
    Outcome {
        node: Option<String>,
        action: &'static str,
        outcome: Outcome,
    },
    /// One line of a node's stream as it arrives (baleine-logs --follow):
    /// `node` first. Shown and kept, not counted: the node's record comes
    /// when its stream ends.
    StreamLine { node: String },
    /// One line of a listing (baleine-list): about no node. Shown and kept,
    /// not counted.
    Listing,
}

/// How a node's work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Where, and the real error (bounded: see [`MAX_ERROR`]).
    Failed {
        stage: Stage,
        error: String,
    },
}

/// One output line: its kind, typed until the writer serializes it, then
/// the job's fields in the order they were added, which makes the stream
/// easy to read by eye as well as with jq.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    kind: Kind,
    fields: Fields,
}

impl Record {
    /// The record of `node` (None only for an input line that named no
    /// node, or a tool's one record about no node).
    pub fn outcome(node: Option<&str>, action: &'static str, outcome: Outcome) -> Record {
        Record {
            kind: Kind::Outcome {
                node: node.map(String::from),
                action,
                outcome,
            },
            fields: Fields::new(),
        }
    }

    pub fn success(node: &str, action: &'static str) -> Record {
        Record::outcome(Some(node), action, Outcome::Ok)
    }

    /// A failed record: the failure's stage, error and fields.
    pub fn failure(node: Option<&str>, action: &'static str, failure: &Failure) -> Record {
        let outcome = Outcome::Failed {
            stage: failure.stage,
            error: bounded_error(&failure.error),
        };
        Record::outcome(node, action, outcome).and(failure.fields.clone())
    }

    /// The record of a job's result: its fields, or its failure.
    pub fn of(node: Option<&str>, action: &'static str, result: Result<Fields, Failure>) -> Record {
        match result {
            Ok(fields) => Record::outcome(node, action, Outcome::Ok).and(fields),
            Err(failure) => Record::failure(node, action, &failure),
        }
    }

    /// One line of a node's stream as it arrives (see [`Kind::StreamLine`]).
    pub fn log_line(node: &str, stream: &str, line: &str) -> Record {
        Record {
            kind: Kind::StreamLine {
                node: node.to_owned(),
            },
            fields: Fields::new().with("stream", stream).with("line", line),
        }
    }

    /// A line of a listing (see [`Kind::Listing`]), fields added with `with`.
    pub fn listing() -> Record {
        Record {
            kind: Kind::Listing,
            fields: Fields::new(),
        }
    }

    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// Whether the writer counts it: a node's (or a build's, a tag's) record.
    pub fn is_counted(&self) -> bool {
        matches!(self.kind, Kind::Outcome { .. })
    }

    /// Whether this is a stream's line (see `log_line`) rather than a record.
    pub fn is_log_line(&self) -> bool {
        matches!(self.kind, Kind::StreamLine { .. })
    }

    /// Adds `fields` after the ones already there.
    pub fn and(mut self, fields: Fields) -> Record {
        self.fields = self.fields.and(fields);
        self
    }

    /// Puts `first` ahead of the fields already there (a tool's fields that
    /// every one of its records carries, before a failure's own).
    pub fn after(mut self, first: Fields) -> Record {
        self.fields = first.and(self.fields);
        self
    }

    /// Adds (or replaces) a field.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Record {
        self.set(key, value);
        self
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        self.fields.set(key, value);
    }

    /// A field the job added (not `node`, `action`, `ok`, `stage`, `error`:
    /// see `node`, `is_ok`, `stage`, `error`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    pub fn node(&self) -> Option<&str> {
        match &self.kind {
            Kind::Outcome { node, .. } => node.as_deref(),
            Kind::StreamLine { node } => Some(node),
            Kind::Listing => None,
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(
            self.kind,
            Kind::Outcome {
                outcome: Outcome::Ok,
                ..
            }
        )
    }

    /// Where a failed record failed.
    pub fn stage(&self) -> Option<Stage> {
        match &self.kind {
            Kind::Outcome {
                outcome: Outcome::Failed { stage, .. },
                ..
            } => Some(*stage),
            _ => None,
        }
    }

    /// Why a failed record failed.
    pub fn error(&self) -> Option<&str> {
        match &self.kind {
            Kind::Outcome {
                outcome: Outcome::Failed { error, .. },
                ..
            } => Some(error),
            _ => None,
        }
    }

    /// The record as one line of JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        let mut head: Vec<(&str, Value)> = Vec::new();
        match &self.kind {
            Kind::Outcome {
                node,
                action,
                outcome,
            } => {
                head.push(("node", node.as_deref().map_or(Value::Null, Value::from)));
                head.push(("action", Value::from(*action)));
                head.push(("ok", Value::from(*outcome == Outcome::Ok)));
                if let Outcome::Failed { stage, error } = outcome {
                    head.push(("stage", Value::from(stage.as_str())));
                    head.push(("error", Value::from(error.as_str())));
                }
            }
            Kind::StreamLine { node } => head.push(("node", Value::from(node.as_str()))),
            Kind::Listing => {}
        }
        let fields = self.fields.0.iter().map(|(k, v)| (*k, v.clone()));
        let mut line = String::from("{");
        for (i, (key, value)) in head.into_iter().chain(fields).enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&Value::from(key).to_string());
            line.push(':');
            line.push_str(&value.to_string());
        }
        line.push('}');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_error_keeps_its_beginning_and_its_end() {
        let error = format!("first line\n{}\nthe real cause é", "é".repeat(8 << 20));
        let bounded = bounded_error(&error);
        assert!(bounded.len() <= MAX_ERROR + 100, "{}", bounded.len());
        assert!(bounded.starts_with("first line\n"));
        assert!(bounded.ends_with("the real cause é"));
        assert!(bounded.contains("bytes left out"));
        assert_eq!(bounded_error("short"), "short");
    }

    #[test]
    fn fields_keep_their_order_and_are_valid_json() {
        let line = Record::success("fit01", "deploy")
            .with("image", "busybox")
            .with("elapsed_ms", 12)
            .to_json_line();
        assert_eq!(
            line,
            r#"{"node":"fit01","action":"deploy","ok":true,"image":"busybox","elapsed_ms":12}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["image"], "busybox");
    }

    #[test]
    fn failures_carry_stage_and_error_and_escape_text() {
        let failure = Failure::new(Stage::Pull, "manifest \"x\" not found\nline 2");
        let record = Record::failure(Some("fit02"), "deploy", &failure);
        assert!(!record.is_ok());
        assert_eq!(record.stage(), Some(Stage::Pull));
        let parsed: serde_json::Value = serde_json::from_str(&record.to_json_line()).unwrap();
        assert_eq!(parsed["error"], "manifest \"x\" not found\nline 2");
        assert_eq!(parsed["ok"], false);
    }

    #[test]
    fn setting_a_field_twice_replaces_it() {
        let record = Record::success("fit01", "destroy")
            .with("removed", false)
            .with("removed", true);
        assert_eq!(
            record.to_json_line(),
            r#"{"node":"fit01","action":"destroy","ok":true,"removed":true}"#
        );
    }

    #[test]
    #[should_panic(expected = "is the record's kind's")]
    fn a_job_cannot_write_the_kind_s_fields() {
        let _ = Record::success("fit01", "destroy").with("ok", false);
    }

    #[test]
    fn only_a_node_s_record_is_counted_and_a_failure_s_head_comes_first() {
        let failed = Record::failure(Some("fit01"), "rmi", &Failure::new(Stage::Delete, "no"))
            .after(Fields::new().with("tag", "v1"));
        assert_eq!(
            failed.to_json_line(),
            r#"{"node":"fit01","action":"rmi","ok":false,"stage":"delete","error":"no","tag":"v1"}"#
        );
        assert_eq!(
            (failed.stage(), failed.error()),
            (Some(Stage::Delete), Some("no"))
        );
        assert!(failed.is_counted());
        let line = Record::log_line("fit02", "stdout", "hi");
        assert_eq!(
            line.to_json_line(),
            r#"{"node":"fit02","stream":"stdout","line":"hi"}"#
        );
        assert!(!line.is_counted() && line.is_log_line());
        let listed = Record::listing().with("tag", "v1");
        assert_eq!(listed.to_json_line(), r#"{"tag":"v1"}"#);
        assert!(!listed.is_counted() && listed.node().is_none());
    }

    #[test]
    fn input_records_may_have_no_node() {
        let record = Record::failure(None, "deploy", &Failure::new(Stage::Input, "bad"));
        assert!(record.to_json_line().starts_with(r#"{"node":null,"#));
    }
}
