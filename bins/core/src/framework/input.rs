//! Where the node list comes from: arguments, stdin (streamed), or `$NODES`, and how it reaches the workers.

use crate::domain::config::Config;
use crate::domain::nodes::LineWord;
use crate::domain::nodes::{
    expand_specs, parse_input_line, NodeName, NodeNaming, NodeSelection, MAX_NODE_NAME_LEN,
};
use crate::domain::record::{Failure, Record, Stage};
use crate::framework::UsageError;
use crossbeam::channel::{Receiver, Sender};
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

/// The fields of a stdin JSON record that named a node (a record of ours fed
/// back): what a tool that takes requests reads for that node (deploy:
/// image, digest, options, command...). Fields it does not use are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The stdin line it came on, for errors.
    pub line: usize,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Checks a request as its line is read, before its node is started: the
/// problem names the field. A refused request stops the run (exit 2).
pub type RequestCheck = std::sync::Arc<CheckRequest>;

/// What a [`RequestCheck`] holds.
pub type CheckRequest = dyn Fn(&Request) -> Result<(), String> + Send + Sync;

/// Our stdin, copied whole into a file of our own (0600, removed when
/// dropped), for a tool that feeds it to every node (`exec --stdin -`). A
/// Ctrl-C while it waits for the writer ends the wait: `None`.
pub fn stdin_to_file() -> std::io::Result<Option<OwnFile>> {
    use std::os::unix::fs::OpenOptionsExt;
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "baleine-stdin-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let own = OwnFile(path);
    let copied = crate::framework::signals::unless_interrupted(move || {
        std::io::copy(&mut std::io::stdin().lock(), &mut file)
    });
    match copied {
        Some(result) => result.map(|_| Some(own)),
        None if crate::domain::stop::interrupted() => Ok(None),
        None => Err(std::io::Error::other("the copy of stdin stopped")),
    }
}

/// A file of ours, removed when dropped.
#[derive(Debug)]
pub struct OwnFile(pub std::path::PathBuf);

impl Drop for OwnFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One unit of input for the workers.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A node to work on.
    Node(NodeName),
    /// A node named by a stdin JSON record, and the request it carries.
    Record(NodeName, std::sync::Arc<Request>),
    /// A stdin line that could not be used; becomes an `input` record.
    Invalid {
        node: Option<String>,
        line: usize,
        error: String,
    },
}

impl Input {
    /// The node, for a node input.
    pub fn node(&self) -> Option<&str> {
        match self {
            Input::Node(node) | Input::Record(node, _) => Some(node),
            Input::Invalid { .. } => None,
        }
    }

    /// The node and its request, for a node input.
    pub fn work(&self) -> Option<(&NodeName, Option<&Request>)> {
        match self {
            Input::Node(node) => Some((node, None)),
            Input::Record(node, request) => Some((node, Some(request))),
            Input::Invalid { .. } => None,
        }
    }

    /// The record for this input when it is not worked on: `input` failure
    /// for an invalid line, `interrupted` for a node.
    pub fn into_record(self, action: &'static str) -> Record {
        match self {
            Input::Node(node) | Input::Record(node, _) => {
                Record::failure(Some(&node), action, &Failure::not_started())
            }
            Input::Invalid { node, line, error } => {
                Record::failure(node.as_deref(), action, &Failure::new(Stage::Input, error))
                    .with("line", line)
            }
        }
    }
}

/// The node list, as chosen by the usual rules.
pub enum NodeSource {
    /// Known up front: positional specs, `--all`, or `$NODES`.
    Listed(Vec<NodeName>),
    /// Read from stdin line by line; work starts as soon as a node is read.
    Stdin,
}

/// Chooses the node source: positional specs (plus ALL_SCOPE with `--all`),
/// else stdin when it is not a terminal, else `$NODES` (rhubarbe's convention).
/// Spec errors here are usage errors: nothing has started yet.
pub fn node_source(
    specs: &[String],
    all: bool,
    takes_command: bool,
    config: &Config,
) -> Result<NodeSource, UsageError> {
    let naming = &config.node_naming;
    if all || !specs.is_empty() {
        // A command word without `--` before it (`deploy -i busybox 1-2
        // sleep 3600`) must not become a node called `sleep`.
        if let Some(word) = specs.iter().find(|w| !is_node_spec(w, config)) {
            // The hint only where a command follows, and the word could
            // start one (not `fit[05-06`, not `--wiat`).
            let command_like = word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b))
                && !word.starts_with('-');
            let hint = match takes_command && command_like {
                true => ": did you forget `--` before the command?",
                false => "",
            };
            return Err(UsageError(format!(
                "{word:?} is not a node (3, fit03, 1-5, fit[01-05,07], ~7, a name with a dot, \
                 or a node of ALL_SCOPE){hint}"
            )));
        }
        let mut words: Vec<String> = if all {
            config.all_nodes.iter().map(|n| n.to_string()).collect()
        } else {
            Vec::new()
        };
        words.extend(specs.iter().cloned());
        let source = listed(&words, naming, "arguments")?;
        if let NodeSource::Listed(names) = &source {
            let outside: Vec<&str> = names
                .iter()
                .filter(|n| !config.all_nodes.contains(n))
                .map(NodeName::as_str)
                .collect();
            if !outside.is_empty() {
                log::warn!(
                    "outside ALL_SCOPE ({} nodes): {}",
                    config.all_nodes.len(),
                    crate::domain::nodes::fold_for_display(&outside)
                );
            }
        }
        return Ok(source);
    }
    if !std::io::stdin().is_terminal() {
        return Ok(NodeSource::Stdin);
    }
    match std::env::var("NODES") {
        Ok(nodes) if !nodes.trim().is_empty() => {
            let words: Vec<String> = nodes.split_whitespace().map(String::from).collect();
            listed(&words, naming, "$NODES")
        }
        _ => Err(UsageError(
            "no nodes: give node specs (e.g. 1-5 fit07), pipe a node list on stdin, or set $NODES"
                .into(),
        )),
    }
}

/// Whether a command-line word names nodes: a number or range (`3`,
/// `1-5`, `4-16-2`), a numbered name (`fit03`), an exclusion of those, a
/// name with a dot (a domain name or an address), or a node of ALL_SCOPE.
pub fn is_node_spec(word: &str, config: &Config) -> bool {
    let body = word.strip_prefix('~').unwrap_or(word);
    let numeric = !body.is_empty()
        && body.split('-').all(|part| {
            let digits = part
                .strip_prefix(config.node_naming.prefix.as_str())
                .unwrap_or(part);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        });
    // A node set as summaries print it (`fit[01-05,07],node-a`).
    let set = body.contains(['[', ','])
        && expand_specs([word], &config.node_naming).is_ok_and(|names| !names.is_empty());
    numeric || set || body.contains('.') || config.all_nodes.iter().any(|n| n == body)
}

fn listed(words: &[String], naming: &NodeNaming, from: &str) -> Result<NodeSource, UsageError> {
    let names = expand_specs(words, naming).map_err(|e| UsageError(format!("{from}: {e}")))?;
    if names.is_empty() {
        return Err(UsageError(format!("{from}: the node list is empty")));
    }
    Ok(NodeSource::Listed(names))
}

/// A closed channel that hands out inputs already read in full, for tools
/// that need the whole node list before any work (save, --bootstrap, and
/// destroy's confirmation).
pub fn replay(inputs: impl IntoIterator<Item = Input>) -> Receiver<Input> {
    let (tx, rx) = crossbeam::channel::unbounded();
    for input in inputs {
        let _ = tx.send(input);
    }
    rx
}

/// Feeds the source's nodes to `tx` and returns; stdin is read by a thread of
/// its own so work starts with the first line, and that thread is left behind
/// if we are interrupted while it waits for input.
pub fn feed(
    source: NodeSource,
    naming: NodeNaming,
    check: Option<RequestCheck>,
    tx: Sender<Input>,
) {
    match source {
        NodeSource::Listed(names) => {
            for name in names {
                let _ = tx.send(Input::Node(name));
            }
        }
        NodeSource::Stdin => {
            std::thread::spawn(move || {
                // Our own buffer over fd 0, whose fill we can see: what has
                // already arrived is all read (and its requests checked)
                // before any node of it starts.
                let fd = std::os::fd::AsFd::as_fd(&std::io::stdin()).try_clone_to_owned();
                let Ok(fd) = fd else {
                    return read_stdin(std::io::stdin().lock(), &naming, check.as_deref(), &tx);
                };
                let reader = std::io::BufReader::new(std::fs::File::from(fd));
                read_input(reader, &naming, check.as_deref(), &arrived, &tx)
            });
        }
    }
}

/// The longest stdin line we read: a record of another tool (exec's, with
/// its output) fits many times over, and a runaway line cannot take more.
pub const MAX_INPUT_LINE: usize = 16 * 1024 * 1024;

/// One stdin line, read with a bounded buffer: the bytes, `Err(true)` when it
/// was longer than `MAX_INPUT_LINE` (the rest of it is skipped), `Err(false)`
/// at EOF.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    line.clear();
    let limit = MAX_INPUT_LINE as u64 + 1;
    if std::io::Read::take(&mut *reader, limit).read_until(b'\n', line)? == 0 {
        return Ok(None);
    }
    if line.len() <= MAX_INPUT_LINE || line.ends_with(b"\n") {
        return Ok(Some(true));
    }
    // Too long: drop the rest of it without keeping it.
    line.clear();
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(Some(false));
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(Some(false));
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

/// Reads node lines until EOF, sending every new node once (duplicates
/// dropped). A JSON record's node comes with its request, checked by
/// `check` (when the tool takes requests): a refused one is the line's
/// `input` record, and ends the input.
pub fn read_stdin(
    reader: impl BufRead,
    naming: &NodeNaming,
    check: Option<&CheckRequest>,
    tx: &Sender<Input>,
) {
    read_input(reader, naming, check, &|_| true, tx)
}

/// Whether more of stdin has arrived already: in the buffer, or waiting in
/// the pipe or file (poll, no wait).
fn arrived(reader: &mut std::io::BufReader<std::fs::File>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    if !reader.buffer().is_empty() {
        return true;
    }
    let mut fds = [PollFd::new(
        std::os::fd::AsFd::as_fd(reader.get_ref()),
        PollFlags::POLLIN,
    )];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
}

/// The inputs of one word of stdin line `line_no`: its new nodes (a
/// record's with its request, checked: a refused one is the line's
/// `input` record, and sets `refused`), or why it names none.
fn word_inputs(
    word: &LineWord,
    line_no: usize,
    selection: &mut NodeSelection,
    naming: &NodeNaming,
    check: Option<&CheckRequest>,
    refused: &mut bool,
) -> Vec<Input> {
    let new = match selection.add_word(word, naming) {
        Ok(new) => new,
        Err(e) => {
            // The record's node is the word, if it could be a name at all.
            let node = Some(word.text().to_owned()).filter(|w| w.len() <= MAX_NODE_NAME_LEN);
            return vec![Input::Invalid {
                node,
                line: line_no,
                error: format!("stdin line {line_no}: {e}"),
            }];
        }
    };
    let LineWord::Record(_, fields) = word else {
        return new.into_iter().map(Input::Node).collect();
    };
    // A node read before: its first line's request stands.
    if new.is_empty() {
        return Vec::new();
    }
    let request = Request {
        line: line_no,
        fields: (**fields).clone(),
    };
    match check.map_or(Ok(()), |check| check(&request)) {
        Ok(()) => {
            let request = Arc::new(request);
            new.into_iter()
                .map(|node| Input::Record(node, request.clone()))
                .collect()
        }
        Err(e) => {
            *refused = true;
            vec![Input::Invalid {
                node: Some(word.text().to_owned()),
                line: line_no,
                error: format!("stdin line {line_no}: {e}"),
            }]
        }
    }
}

/// `read_stdin`, holding back the nodes read while `more` says more input
/// has arrived already: they are sent together once it has not (or at the
/// end), so a refused request among what arrived at once (a file, a jq
/// over a state file) starts none of them: each gets its record, not
/// started, as the refusal says.
fn read_input<R: BufRead>(
    mut reader: R,
    naming: &NodeNaming,
    check: Option<&CheckRequest>,
    more: &dyn Fn(&mut R) -> bool,
    tx: &Sender<Input>,
) {
    let mut selection = NodeSelection::new();
    let mut bytes = Vec::new();
    let mut refused = false;
    let mut pending: Vec<Input> = Vec::new();
    let flush = |pending: &mut Vec<Input>| pending.drain(..).all(|input| tx.send(input).is_ok());
    for line_no in 1.. {
        // Interrupted: what was read gets its records (not started), now.
        if crate::domain::stop::interrupted() {
            flush(&mut pending);
            return;
        }
        let invalid = |node: Option<String>, error: String| Input::Invalid {
            node,
            line: line_no,
            error: format!("stdin line {line_no}: {error}"),
        };
        let inputs: Vec<Input> = match read_line(&mut reader, &mut bytes) {
            Ok(None) => {
                flush(&mut pending);
                return;
            }
            // A read error does not pass (a directory as stdin): say it once, stop.
            Err(e) => {
                pending.push(invalid(None, format!("cannot read: {e}")));
                flush(&mut pending);
                return;
            }
            Ok(Some(false)) => vec![invalid(
                None,
                format!("longer than {MAX_INPUT_LINE} bytes, skipped"),
            )],
            Ok(Some(true)) => match std::str::from_utf8(&bytes) {
                Err(_) => vec![invalid(None, "not valid UTF-8".into())],
                Ok(text) => match parse_input_line(text) {
                    Err(e) => vec![invalid(None, e.to_string())],
                    Ok(words) => words
                        .iter()
                        .flat_map(|word| {
                            word_inputs(word, line_no, &mut selection, naming, check, &mut refused)
                        })
                        .collect(),
                },
            },
        };
        // The refused line's record first: the nodes held back then get
        // theirs as not started, since the run stops.
        match refused {
            true => pending.splice(0..0, inputs),
            false => pending.splice(pending.len().., inputs),
        };
        // A refused request ends the input: nothing after it starts.
        if refused {
            flush(&mut pending);
            return;
        }
        if !more(&mut reader) && !flush(&mut pending) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::unbounded;

    fn read(text: &str) -> Vec<Input> {
        let (tx, rx) = unbounded();
        read_stdin(text.as_bytes(), &NodeNaming::default(), None, &tx);
        drop(tx);
        rx.iter().collect()
    }

    #[test]
    fn rhubarbe_output_and_records_both_work_and_duplicates_are_dropped() {
        let inputs =
            read("fit01 fit02 3\n{\"node\":\"fit02\",\"ok\":true}\n{\"node\":\"fit04\"}\n");
        let nodes: Vec<_> = inputs
            .iter()
            .map(|i| match i {
                Input::Node(n) => n.as_str(),
                Input::Record(n, _) => n.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(nodes, ["fit01", "fit02", "fit03", "fit04"]);
        // A record's node comes with the record, the line it was on.
        let Input::Record(_, request) = &inputs[3] else {
            panic!("{:?}", inputs[3])
        };
        assert_eq!(request.line, 3);
        assert_eq!(request.fields["node"], "fit04");
    }

    #[test]
    fn a_refused_request_is_its_line_s_record_and_ends_the_input() {
        let (tx, rx) = unbounded();
        let check = |request: &Request| match request.fields.get("image") {
            Some(serde_json::Value::Number(_)) => Err("field image: not a string".to_owned()),
            _ => Ok(()),
        };
        let text =
            "{\"node\":\"fit01\",\"image\":\"busybox\"}\n{\"node\":\"fit02\",\"image\":7}\nfit03\n";
        read_stdin(text.as_bytes(), &NodeNaming::default(), Some(&check), &tx);
        drop(tx);
        let inputs: Vec<Input> = rx.iter().collect();
        // Read together, the refused line's record comes first, and the node
        // read before it after, to be recorded as not started: none starts.
        assert_eq!(inputs.len(), 2, "{inputs:?}");
        assert!(matches!(&inputs[1], Input::Record(node, _) if node.as_str() == "fit01"));
        assert!(matches!(
            &inputs[0],
            Input::Invalid { line: 2, node: Some(node), error }
                if node == "fit02" && error == "stdin line 2: field image: not a string"
        ));
    }

    #[test]
    fn bad_lines_name_their_line_number_and_the_rest_goes_on() {
        let inputs = read("fit01\n{\"node\": 3}\n-oProxyCommand=x\n{oops\nfit02\n");
        assert_eq!(inputs[0], Input::Node(NodeName::new("fit01").unwrap()));
        assert!(
            matches!(&inputs[1], Input::Invalid { line: 2, node: None, error } if error.starts_with("stdin line 2: "))
        );
        assert!(
            matches!(&inputs[2], Input::Invalid { line: 3, node: Some(n), .. } if n == "-oProxyCommand=x")
        );
        assert!(
            matches!(&inputs[3], Input::Invalid { line: 4, error, .. } if error.contains("malformed JSON"))
        );
        assert_eq!(inputs[4], Input::Node(NodeName::new("fit02").unwrap()));
    }

    #[test]
    fn an_overlong_line_is_one_input_error_and_the_next_line_still_counts() {
        let mut text = vec![b'x'; MAX_INPUT_LINE + 10];
        text.extend_from_slice(b"\nfit05\n");
        let (tx, rx) = unbounded();
        read_stdin(&text[..], &NodeNaming::default(), None, &tx);
        drop(tx);
        let inputs: Vec<_> = rx.iter().collect();
        assert!(
            matches!(&inputs[0], Input::Invalid { line: 1, node: None, error } if error.contains("longer than"))
        );
        assert_eq!(inputs[1], Input::Node(NodeName::new("fit05").unwrap()));
        assert_eq!(inputs.len(), 2);
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_read() {
        let mut text = b"fit01 ".to_vec();
        text.extend(std::iter::repeat_n(b' ', MAX_INPUT_LINE - text.len()));
        assert_eq!(
            read(std::str::from_utf8(&text).unwrap()),
            [Input::Node(NodeName::new("fit01").unwrap())]
        );
    }

    #[test]
    fn a_read_error_is_one_record_not_an_endless_stream() {
        struct Broken;
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("is a directory"))
            }
        }
        let (tx, rx) = unbounded();
        read_stdin(
            std::io::BufReader::new(Broken),
            &NodeNaming::default(),
            None,
            &tx,
        );
        drop(tx);
        let inputs: Vec<_> = rx.iter().collect();
        assert_eq!(inputs.len(), 1);
        assert!(
            matches!(&inputs[0], Input::Invalid { error, .. } if error.contains("cannot read"))
        );
    }

    #[test]
    fn invalid_utf8_is_an_input_error_not_a_stop() {
        let (tx, rx) = unbounded();
        read_stdin(&b"\xff\xfe\nfit05\n"[..], &NodeNaming::default(), None, &tx);
        drop(tx);
        let inputs: Vec<_> = rx.iter().collect();
        assert!(matches!(&inputs[0], Input::Invalid { line: 1, .. }));
        assert_eq!(inputs[1], Input::Node(NodeName::new("fit05").unwrap()));
    }

    #[test]
    fn input_records_carry_line_and_stage() {
        let record = Input::Invalid {
            node: None,
            line: 7,
            error: "stdin line 7: bad".into(),
        }
        .into_record("destroy");
        assert_eq!(record.stage(), Some(Stage::Input));
        assert_eq!(record.get("line"), Some(&serde_json::Value::from(7)));
    }
}
