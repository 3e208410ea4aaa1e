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

    /// A node the run stopped before its work began.
    pub fn not_started() -> Failure {
        Failure::new(Stage::Interrupted, "interrupted before starting")
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

/// One output line. Fields keep the order they were added in (node, action and
/// ok first), which makes the stream easy to read by eye as well as with jq.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    fields: Vec<(&'static str, Value)>,
}

impl Record {
    /// A record for `node` (None only for an input line that named no node).
    pub fn new(node: Option<&str>, action: &str, ok: bool) -> Record {
        let node = node.map_or(Value::Null, Value::from);
        Record {
            fields: vec![
                ("node", node),
                ("action", Value::from(action)),
                ("ok", Value::from(ok)),
            ],
        }
    }

    /// One line of a node's stream as it arrives (baleine-logs --follow):
    /// `node`, `stream`, `line`, and no `action`: not the node's record,
    /// which comes when its stream ends.
    pub fn log_line(node: &str, stream: &str, line: &str) -> Record {
        Record {
            fields: vec![
                ("node", Value::from(node)),
                ("stream", Value::from(stream)),
                ("line", Value::from(line)),
            ],
        }
    }

    /// Whether this is a stream's line (see `log_line`) rather than a record.
    pub fn is_log_line(&self) -> bool {
        self.get("action").is_none() && self.get("line").is_some()
    }

    /// A line that is not about a node (baleine-list's), fields added with `with`.
    pub fn line() -> Record {
        Record { fields: Vec::new() }
    }

    pub fn success(node: &str, action: &str) -> Record {
        Record::new(Some(node), action, true)
    }

    pub fn failure(node: Option<&str>, action: &str, failure: &Failure) -> Record {
        Record::new(node, action, false).failed_with(failure)
    }

    /// Adds a failure's stage, error (bounded: see [`MAX_ERROR`]) and fields.
    pub fn failed_with(self, failure: &Failure) -> Record {
        self.with("stage", failure.stage.as_str())
            .with("error", bounded_error(&failure.error))
            .and(failure.fields.clone())
    }

    /// Adds `fields` after the ones already there.
    pub fn and(mut self, fields: Fields) -> Record {
        for (key, value) in fields.0 {
            self.set(key, value);
        }
        self
    }

    /// Adds (or replaces) a field.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Record {
        self.set(key, value);
        self
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn node(&self) -> Option<&str> {
        self.get("node").and_then(Value::as_str)
    }

    pub fn is_ok(&self) -> bool {
        self.get("ok") == Some(&Value::Bool(true))
    }

    pub fn stage(&self) -> Option<&str> {
        self.get("stage").and_then(Value::as_str)
    }

    /// The record as one line of JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        let mut line = String::from("{");
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&Value::from(*key).to_string());
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
        assert_eq!(record.stage(), Some("pull"));
        let parsed: serde_json::Value = serde_json::from_str(&record.to_json_line()).unwrap();
        assert_eq!(parsed["error"], "manifest \"x\" not found\nline 2");
        assert_eq!(parsed["ok"], false);
    }

    #[test]
    fn setting_a_field_twice_replaces_it() {
        let record = Record::success("fit01", "destroy").with("ok", false);
        assert_eq!(
            record.to_json_line(),
            r#"{"node":"fit01","action":"destroy","ok":false}"#
        );
    }

    #[test]
    fn input_records_may_have_no_node() {
        let record = Record::failure(None, "deploy", &Failure::new(Stage::Input, "bad"));
        assert!(record.to_json_line().starts_with(r#"{"node":null,"#));
    }
}
