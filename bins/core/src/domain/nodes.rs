//! Node names and node lists: rhubarbe-style specs (`1-5`, `fit03`, `~7`) and stdin lines.

use std::collections::HashSet;
use std::fmt;

/// Longest DNS name; anything longer cannot be an ssh destination anyway.
pub const MAX_NODE_NAME_LEN: usize = 253;
/// Keeps a typo like `1-99999999` from producing millions of names.
const MAX_NODE_NUMBER: u32 = 9999;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    InvalidName { name: String, reason: &'static str },
    InvalidSpec { spec: String, reason: &'static str },
    MalformedJson(String),
    JsonWithoutNode,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName { name, reason } => {
                write!(f, "invalid node name {}: {reason}", shown(name))
            }
            Self::InvalidSpec { spec, reason } => {
                write!(f, "invalid node spec {}: {reason}", shown(spec))
            }
            Self::MalformedJson(problem) => write!(f, "malformed JSON: {problem}"),
            Self::JsonWithoutNode => f.write_str("JSON object has no string field \"node\""),
        }
    }
}

impl std::error::Error for NodeError {}

/// How much of a bad word an error message quotes: a megabyte-long word is
/// not echoed back whole.
const SHOWN_CHARS: usize = 64;

/// `word` quoted for an error message, cut to its first characters.
pub fn shown(word: &str) -> String {
    match word.char_indices().nth(SHOWN_CHARS) {
        None => format!("{word:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &word[..cut], word.len()),
    }
}

/// One word of a stdin line: a spec from a plain line (`1-5`, `~3`), or the
/// `node` field of a JSON record, which names one node and is taken
/// literally (`{"node":"0-3"}` is not four nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineWord {
    Spec(String),
    Name(String),
    /// A JSON record's node (a literal name), with the record's fields: a
    /// record of ours fed back may carry a request for that node.
    Record(String, Box<serde_json::Map<String, serde_json::Value>>),
}

impl LineWord {
    pub fn text(&self) -> &str {
        match self {
            LineWord::Spec(text) | LineWord::Name(text) | LineWord::Record(text, _) => text,
        }
    }
}

/// Node names end up as ssh destinations and inside remote shell commands, so
/// refusing a leading `-` and anything but `[A-Za-z0-9.-]` rules out both
/// ssh option injection and shell metacharacters.
pub fn validate_node_name(name: &str) -> Result<(), NodeError> {
    let invalid = |reason| NodeError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.len() > MAX_NODE_NAME_LEN {
        return Err(invalid("longer than 253 characters"));
    }
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
        return Err(invalid(
            "must start with a letter or digit and contain only letters, digits, '.' and '-'",
        ));
    }
    Ok(())
}

/// A node's name, made only by validation ([`validate_node_name`]): what
/// reaches ssh as a destination (`remote::ssh` takes nothing else) and a
/// remote shell as a word.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    pub fn new(name: &str) -> Result<NodeName, NodeError> {
        validate_node_name(name)?;
        Ok(NodeName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for NodeName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for NodeName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// How node numbers become host names (`3` → `fit03`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNaming {
    pub prefix: String,
}

impl Default for NodeNaming {
    fn default() -> Self {
        Self {
            prefix: "fit".to_owned(),
        }
    }
}

impl NodeNaming {
    /// Zero-padded to 2 digits because that is how R2Lab nodes are named in DNS.
    pub fn name(&self, number: u32) -> Result<NodeName, NodeError> {
        NodeName::new(&format!("{}{number:02}", self.prefix))
    }

    /// Numbers, with or without the prefix (`7`, `07`, `fit7`); `None` for anything else.
    fn number_in<'w>(&self, word: &'w str) -> Option<&'w str> {
        let digits = word.strip_prefix(self.prefix.as_str()).unwrap_or(word);
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
    }
}

/// An ordered set of node names, built one spec at a time so a streaming
/// reader can start working on each node as soon as it is named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelection {
    names: Vec<NodeName>,
    members: HashSet<NodeName>,
}

impl NodeSelection {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn names(&self) -> &[NodeName] {
        &self.names
    }

    /// Adds one node name, taken literally; returns it if it was not
    /// already selected.
    pub fn add_name(&mut self, name: &str) -> Result<Option<NodeName>, NodeError> {
        let name = NodeName::new(name)?;
        if !self.members.insert(name.clone()) {
            return Ok(None);
        }
        self.names.push(name.clone());
        Ok(Some(name))
    }

    /// Applies one line word: a spec, or a literal name.
    pub fn add_word(
        &mut self,
        word: &LineWord,
        naming: &NodeNaming,
    ) -> Result<Vec<NodeName>, NodeError> {
        match word {
            LineWord::Spec(spec) => self.add_spec(spec, naming),
            LineWord::Name(name) | LineWord::Record(name, _) => {
                Ok(self.add_name(name)?.into_iter().collect())
            }
        }
    }

    /// Applies one spec; returns the names it added that were not already
    /// selected. An exclusion (`~...`) removes from what has been selected so
    /// far, and a later spec may add those nodes back.
    pub fn add_spec(
        &mut self,
        spec: &str,
        naming: &NodeNaming,
    ) -> Result<Vec<NodeName>, NodeError> {
        let (excluding, body) = match spec.strip_prefix('~') {
            Some(body) => (true, body),
            None => (false, spec),
        };
        let names = match body.contains(['[', ',']) {
            true => expand_set(spec, body, naming)?,
            false => expand_one(spec, body, naming)?,
        };
        if excluding {
            let excluded: HashSet<NodeName> = names.into_iter().collect();
            self.names.retain(|name| !excluded.contains(name));
            self.members.retain(|name| !excluded.contains(name));
            return Ok(Vec::new());
        }
        let added: Vec<NodeName> = names
            .into_iter()
            .filter(|name| self.members.insert(name.clone()))
            .collect();
        self.names.extend(added.iter().cloned());
        Ok(added)
    }
}

/// Expands specs into node names, in order, without duplicates.
pub fn expand_specs<S: AsRef<str>>(
    specs: impl IntoIterator<Item = S>,
    naming: &NodeNaming,
) -> Result<Vec<NodeName>, NodeError> {
    let mut selection = NodeSelection::new();
    for spec in specs {
        selection.add_spec(spec.as_ref(), naming)?;
    }
    Ok(selection.names)
}

/// The most names one bracket set may give (`fit[0000-9999]` and no more).
const MAX_SET: u32 = 10_000;

/// A node set as summaries print it (clush's form, which `fold_for_display`
/// writes): names, numbers and ranges separated by commas, and
/// `PREFIX[ITEMS]SUFFIX` with ITEMS numbers or ranges written with their
/// width (`fit[01-05,07],node-a`).
fn expand_set(spec: &str, body: &str, naming: &NodeNaming) -> Result<Vec<NodeName>, NodeError> {
    let invalid = |reason| NodeError::InvalidSpec {
        spec: spec.to_owned(),
        reason,
    };
    // Commas outside brackets separate the parts.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (at, c) in body.char_indices() {
        match c {
            '[' if depth == 0 => depth = 1,
            ']' if depth == 1 => depth = 0,
            '[' | ']' => return Err(invalid("brackets do not pair")),
            ',' if depth == 0 => {
                parts.push(&body[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(invalid("brackets do not pair"));
    }
    parts.push(&body[start..]);
    let mut names = Vec::new();
    for part in parts {
        let Some((prefix, rest)) = part.split_once('[') else {
            names.extend(expand_one(spec, part, naming)?);
            continue;
        };
        let (inner, suffix) = rest
            .split_once(']')
            .ok_or_else(|| invalid("brackets do not pair"))?;
        for item in inner.split(',') {
            let (first, last) = item.split_once('-').unwrap_or((item, item));
            let digits =
                |d: &str| !d.is_empty() && d.len() <= 5 && d.bytes().all(|b| b.is_ascii_digit());
            if !digits(first) || !digits(last) {
                return Err(invalid("inside brackets: numbers or ranges (01-05,07)"));
            }
            let (a, b): (u32, u32) = (first.parse().unwrap_or(0), last.parse().unwrap_or(0));
            if a > b {
                return Err(invalid("range start is greater than its end"));
            }
            if names.len() as u32 + (b - a) >= MAX_SET {
                return Err(invalid("more than 10000 nodes"));
            }
            let width = first.len();
            for number in a..=b {
                names.push(NodeName::new(&format!("{prefix}{number:0width$}{suffix}"))?);
            }
        }
    }
    Ok(names)
}

/// `body` is `spec` without its `~`; `spec` is kept whole for error messages.
fn expand_one(spec: &str, body: &str, naming: &NodeNaming) -> Result<Vec<NodeName>, NodeError> {
    let invalid = |reason| NodeError::InvalidSpec {
        spec: spec.to_owned(),
        reason,
    };
    if body.is_empty() {
        return Err(invalid("nothing to select"));
    }
    let parts: Vec<&str> = body.split('-').collect();
    // A word made only of numbers and dashes is meant as a range, so a
    // malformed one is an error rather than a host name like `3-`.
    let looks_numeric = parts.iter().any(|part| naming.number_in(part).is_some())
        && parts
            .iter()
            .all(|part| part.is_empty() || naming.number_in(part).is_some());
    if !looks_numeric {
        return Ok(vec![NodeName::new(body)?]);
    }
    if parts.iter().any(|part| part.is_empty()) {
        return Err(invalid("empty range bound"));
    }
    let number = |word: &str| -> Result<u32, NodeError> {
        naming
            .number_in(word)
            .and_then(|digits| digits.parse().ok())
            .filter(|&number| number <= MAX_NODE_NUMBER)
            .ok_or_else(|| invalid("node numbers must be 9999 at most"))
    };
    let (first, last, step) = match parts[..] {
        [single] => {
            let number = number(single)?;
            (number, number, 1)
        }
        [first, last] => (number(first)?, number(last)?, 1),
        [first, last, step] if step.bytes().all(|b| b.is_ascii_digit()) => {
            (number(first)?, number(last)?, number(step)?)
        }
        [_, _, _] => return Err(invalid("a range step must be a plain number")),
        _ => return Err(invalid("expected NUMBER, FIRST-LAST or FIRST-LAST-STEP")),
    };
    if first > last {
        return Err(invalid("range start is greater than its end"));
    }
    if step == 0 {
        return Err(invalid("range step must be positive"));
    }
    (first..=last)
        .step_by(step as usize)
        .map(|number| naming.name(number))
        .collect()
}

/// The shortest node specs that expand back to `names` (as a set): runs of
/// numbered names fold into ranges (`fit01 fit02 fit03 fit07` → `1-3 7`),
/// other names stay as they are. Sorted: numbered first, then by name.
pub fn fold_names<S: AsRef<str>>(names: &[S], naming: &NodeNaming) -> Vec<String> {
    let mut numbers: Vec<u32> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for name in names {
        let name = name.as_ref();
        // Only a name that is exactly what its number gives folds: fit007
        // is a host of its own, not fit07.
        let number = naming
            .number_in(name)
            .and_then(|digits| digits.parse::<u32>().ok())
            .filter(|&n| n <= MAX_NODE_NUMBER && naming.name(n).ok().as_deref() == Some(name));
        match number {
            Some(number) => numbers.push(number),
            None => others.push(name.to_owned()),
        }
    }
    numbers.sort_unstable();
    numbers.dedup();
    others.sort();
    others.dedup();
    let mut specs = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        while i + 1 < numbers.len() && numbers[i + 1] == numbers[i] + 1 {
            i += 1;
        }
        specs.push(match numbers[i] {
            end if end == start => start.to_string(),
            end => format!("{start}-{end}"),
        });
        i += 1;
    }
    specs.extend(others);
    specs
}

/// A node's own values in a word: `{node}` becomes its name, `{index}` its
/// number (fit07 → 7), `{{` and `}}` single braces; any other brace text
/// stays as written (`{a,b}` is not a placeholder). Applied to each word
/// before it is quoted, so a value can never inject anything.
pub fn expand_placeholders(word: &str, node: &str) -> Result<String, String> {
    // Only ASCII sequences are replaced, by text: UTF-8 in, UTF-8 out.
    expand_placeholders_in_bytes(word.as_bytes(), node)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// [`expand_placeholders`] over any bytes: a file name need not be UTF-8.
pub fn expand_placeholders_in_bytes(word: &[u8], node: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(word.len());
    let mut rest = word;
    while let Some(at) = rest.iter().position(|&b| b == b'{' || b == b'}') {
        out.extend_from_slice(&rest[..at]);
        rest = &rest[at..];
        let used = if rest.starts_with(b"{{") {
            out.push(b'{');
            2
        } else if rest.starts_with(b"}}") {
            out.push(b'}');
            2
        } else if rest.starts_with(b"{node}") {
            out.extend_from_slice(node.as_bytes());
            6
        } else if rest.starts_with(b"{index}") {
            let digits = node.len() - node.bytes().rev().take_while(u8::is_ascii_digit).count();
            let number = node[digits..]
                .parse::<u32>()
                .map_err(|_| format!("{{index}}: {node:?} ends with no number"))?;
            out.extend_from_slice(number.to_string().as_bytes());
            7
        } else {
            out.push(rest[0]);
            1
        };
        rest = &rest[used..];
    }
    out.extend_from_slice(rest);
    Ok(out)
}

/// Node names for a person to read, clush-style: `fit[01-03,07],node-a`.
pub fn fold_for_display<S: AsRef<str>>(names: &[S]) -> String {
    use std::collections::BTreeMap;
    // (Prefix, width) → numbers: a set reads back to the very names, so
    // fit05 and fit100 are two groups, never fit005.
    let mut groups: BTreeMap<(&str, usize), Vec<(u32, usize)>> = BTreeMap::new();
    let mut others: Vec<&str> = Vec::new();
    for name in names {
        let name = name.as_ref();
        let digits = name.len() - name.bytes().rev().take_while(u8::is_ascii_digit).count();
        match name[digits..].parse::<u32>() {
            Ok(number) if digits < name.len() => groups
                .entry((&name[..digits], name.len() - digits))
                .or_default()
                .push((number, name.len() - digits)),
            _ => others.push(name),
        }
    }
    let mut parts = Vec::new();
    for ((prefix, _), mut numbers) in groups {
        numbers.sort_unstable();
        numbers.dedup();
        let width = numbers.iter().map(|(_, w)| *w).max().unwrap_or(0);
        let mut ranges: Vec<String> = Vec::new();
        let mut i = 0;
        while i < numbers.len() {
            let start = numbers[i].0;
            while i + 1 < numbers.len() && numbers[i + 1].0 == numbers[i].0 + 1 {
                i += 1;
            }
            let end = numbers[i].0;
            ranges.push(match end == start {
                true => format!("{start:0width$}"),
                false => format!("{start:0width$}-{end:0width$}"),
            });
            i += 1;
        }
        parts.push(match (ranges.len(), ranges[0].contains('-')) {
            (1, false) => format!("{prefix}{}", ranges[0]),
            _ => format!("{prefix}[{}]", ranges.join(",")),
        });
    }
    others.sort_unstable();
    others.dedup();
    parts.extend(others.into_iter().map(String::from));
    parts.join(",")
}

/// The words of one stdin line. Lines are either plain specs (as printed by
/// `rhubarbe nodes`) or JSON objects from another baleine tool, whose `node`
/// field names one node, so tools can be chained with pipes.
pub fn parse_input_line(line: &str) -> Result<Vec<LineWord>, NodeError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Vec::new());
    }
    if !line.starts_with('{') {
        return Ok(line
            .split_whitespace()
            .map(|word| LineWord::Spec(word.to_owned()))
            .collect());
    }
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|error| NodeError::MalformedJson(error.to_string()))?;
    match object.get("node") {
        Some(serde_json::Value::String(node)) => Ok(vec![LineWord::Record(
            node.clone(),
            Box::new(object.clone()),
        )]),
        _ => Err(NodeError::JsonWithoutNode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names as the code makes them, for comparisons.
    fn names(list: &[&str]) -> Vec<NodeName> {
        list.iter()
            .map(|name| NodeName::new(name).unwrap())
            .collect()
    }

    fn expand(specs: &str) -> Result<Vec<NodeName>, NodeError> {
        expand_specs(specs.split_whitespace(), &NodeNaming::default())
    }

    fn expanded(specs: &str) -> Vec<NodeName> {
        expand(specs).unwrap_or_else(|error| panic!("{specs}: {error}"))
    }

    fn spec_error(specs: &str) -> String {
        match expand(specs) {
            Ok(names) => panic!("{specs} was accepted as {names:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn accepts_host_names() {
        for name in ["fit01", "node-a.example.org", "10.0.0.1", "a", "A-1"] {
            assert_eq!(validate_node_name(name), Ok(()), "{name}");
        }
        assert_eq!(validate_node_name(&"a".repeat(253)), Ok(()));
    }

    #[test]
    fn refuses_names_that_could_be_options_or_shell_code() {
        for name in [
            "-oProxyCommand=x",
            "fit01;rm -rf /",
            "$(x)",
            "`x`",
            "a b",
            "",
            ".a",
            "a/b",
            "é",
        ] {
            assert!(validate_node_name(name).is_err(), "{name}");
        }
        assert!(validate_node_name(&"a".repeat(254)).is_err());
    }

    #[test]
    fn name_error_quotes_the_name() {
        assert_eq!(
            validate_node_name("-oProxyCommand=x")
                .unwrap_err()
                .to_string(),
            "invalid node name \"-oProxyCommand=x\": must start with a letter or digit \
             and contain only letters, digits, '.' and '-'"
        );
    }

    #[test]
    fn numbers_become_padded_names() {
        assert_eq!(expanded("3 03 fit3 fit03 100"), ["fit03", "fit100"]);
        assert_eq!(expanded("fit003"), ["fit03"]);
    }

    #[test]
    fn ranges_are_inclusive_with_optional_step_and_prefixes() {
        assert_eq!(expanded("1-3"), ["fit01", "fit02", "fit03"]);
        assert_eq!(expanded("4-10-2"), ["fit04", "fit06", "fit08", "fit10"]);
        assert_eq!(expanded("4-9-2"), ["fit04", "fit06", "fit08"]);
        assert_eq!(expanded("fit1-fit3"), expanded("1-3"));
        assert_eq!(expanded("fit01-03"), expanded("1-3"));
        assert_eq!(expanded("1-fit03"), expanded("1-3"));
        assert_eq!(expanded("5-5"), ["fit05"]);
    }

    #[test]
    fn keeps_order_and_drops_duplicates() {
        assert_eq!(expanded("3 1-4 2"), ["fit03", "fit01", "fit02", "fit04"]);
        assert_eq!(expanded("node-a node-a fit01"), ["node-a", "fit01"]);
    }

    #[test]
    fn excludes_apply_to_what_came_before() {
        assert_eq!(expanded("1-5 ~2-4"), ["fit01", "fit05"]);
        assert_eq!(expanded("1-3 ~2 2"), ["fit01", "fit03", "fit02"]);
        assert_eq!(expanded("~2 1-3"), ["fit01", "fit02", "fit03"]);
        assert_eq!(expanded("1-3 ~fit02"), ["fit01", "fit03"]);
        assert_eq!(expanded("node-a fit01 ~node-a"), ["fit01"]);
    }

    #[test]
    fn add_spec_reports_only_new_names() {
        let naming = NodeNaming::default();
        let mut selection = NodeSelection::new();
        assert_eq!(
            selection.add_spec("1-2", &naming),
            Ok(names(&["fit01", "fit02"]))
        );
        assert_eq!(selection.add_spec("2-3", &naming), Ok(names(&["fit03"])));
        assert_eq!(selection.add_spec("~1", &naming), Ok(vec![]));
        assert_eq!(selection.add_spec("1", &naming), Ok(names(&["fit01"])));
        assert_eq!(selection.names(), ["fit02", "fit03", "fit01"]);
    }

    #[test]
    fn other_prefixes() {
        let naming = NodeNaming {
            prefix: "node".into(),
        };
        assert_eq!(
            expand_specs(["1-2", "fit3"], &naming),
            Ok(names(&["node01", "node02", "fit3"]))
        );
        let bare = NodeNaming {
            prefix: String::new(),
        };
        assert_eq!(expand_specs(["7"], &bare), Ok(names(&["07"])));
        let hostile = NodeNaming {
            prefix: "-o".into(),
        };
        assert!(expand_specs(["7"], &hostile).is_err());
    }

    #[test]
    fn malformed_specs_are_errors_naming_the_spec() {
        assert_eq!(
            spec_error("5-1"),
            "invalid node spec \"5-1\": range start is greater than its end"
        );
        assert_eq!(
            spec_error("1-5-0"),
            "invalid node spec \"1-5-0\": range step must be positive"
        );
        assert_eq!(
            spec_error("3-"),
            "invalid node spec \"3-\": empty range bound"
        );
        assert_eq!(
            spec_error("1--5"),
            "invalid node spec \"1--5\": empty range bound"
        );
        assert_eq!(
            spec_error("~"),
            "invalid node spec \"~\": nothing to select"
        );
        assert_eq!(
            spec_error("10000"),
            "invalid node spec \"10000\": node numbers must be 9999 at most"
        );
        assert!(spec_error("99999999999999999999").contains("9999 at most"));
        assert!(spec_error("1-2-3-4").contains("FIRST-LAST-STEP"));
        assert!(spec_error("1-5-fit2").contains("plain number"));
        assert!(spec_error("~-x").starts_with("invalid node name \"-x\""));
        assert!(spec_error("fit01;rm").starts_with("invalid node name"));
        assert!(spec_error("$(x)").starts_with("invalid node name"));
    }

    #[test]
    fn input_lines_of_words() {
        assert_eq!(
            parse_input_line("fit01 fit02\tfit03 \n"),
            Ok(vec![spec("fit01"), spec("fit02"), spec("fit03")])
        );
        assert_eq!(
            parse_input_line("  1-5 ~3"),
            Ok(vec![spec("1-5"), spec("~3")])
        );
        assert_eq!(parse_input_line(""), Ok(vec![]));
        assert_eq!(parse_input_line("   \t"), Ok(vec![]));
        assert_eq!(parse_input_line("# fit01"), Ok(vec![]));
        assert_eq!(parse_input_line("  # fit01"), Ok(vec![]));
    }

    #[test]
    fn input_lines_of_json() {
        let record = r#"{"node":"fit02","action":"deploy","ok":true}"#;
        let words = parse_input_line(record).unwrap();
        assert_eq!(words.len(), 1);
        assert_eq!(words[0].text(), "fit02");
        let LineWord::Record(_, fields) = &words[0] else {
            panic!("{words:?}")
        };
        assert_eq!(fields["action"], "deploy");
        let words = parse_input_line(r#"  {"node": "fit03"}"#).unwrap();
        assert_eq!(
            words.iter().map(LineWord::text).collect::<Vec<_>>(),
            ["fit03"]
        );
    }

    fn spec(text: &str) -> LineWord {
        LineWord::Spec(text.into())
    }

    #[test]
    fn a_record_s_node_is_one_literal_name_never_a_spec() {
        let mut selection = NodeSelection::new();
        let naming = NodeNaming::default();
        let words = parse_input_line(r#"{"node":"0-3"}"#).unwrap();
        assert_eq!(selection.add_word(&words[0], &naming), Ok(names(&["0-3"])));
        let words = parse_input_line(r#"{"node":"~fit01"}"#).unwrap();
        assert!(selection.add_word(&words[0], &naming).is_err());
        let words = parse_input_line(r#"{"node":"7"}"#).unwrap();
        assert_eq!(selection.add_word(&words[0], &naming), Ok(names(&["7"])));
    }

    #[test]
    fn names_fold_into_ranges_that_expand_back() {
        let naming = NodeNaming::default();
        let names = ["fit03", "fit01", "fit02", "fit07", "node-a", "fit02"];
        let specs = fold_names(&names, &naming);
        assert_eq!(specs, ["1-3", "7", "node-a"]);
        let mut back = expand_specs(&specs, &naming).unwrap();
        back.sort();
        assert_eq!(back, ["fit01", "fit02", "fit03", "fit07", "node-a"]);
    }

    #[test]
    fn placeholders_take_the_node_s_values_and_nothing_else() {
        let expand = |w: &str| expand_placeholders(w, "fit07").unwrap();
        assert_eq!(expand("--name=exp-{node}"), "--name=exp-fit07");
        assert_eq!(expand("ID={index}"), "ID=7");
        assert_eq!(expand("{{node}}"), "{node}");
        assert_eq!(
            expand("{a,b} x{1..3} {} {nodes} }{"),
            "{a,b} x{1..3} {} {nodes} }{"
        );
        assert_eq!(expand("{{json .}}"), "{json .}");
        assert!(expand_placeholders("{index}", "node-a").is_err());
        assert_eq!(expand_placeholders("{index}", "fit100").unwrap(), "100");
    }

    #[test]
    fn the_node_sets_summaries_print_read_back_as_the_same_nodes() {
        let naming = NodeNaming::default();
        for nodes in [
            vec!["fit07", "fit05", "fit06", "fit37", "node-a", "fit09"],
            vec!["fit03"],
            vec![
                "fit01",
                "fit02",
                "fit05",
                "fit100",
                "fit101",
                "r2lab.example.org",
            ],
            vec!["n1", "n2", "n10"],
        ] {
            let folded = fold_for_display(&nodes);
            let mut back: Vec<String> = expand_specs([folded.as_str()], &naming)
                .unwrap_or_else(|e| panic!("{folded}: {e}"))
                .iter()
                .map(|n| n.to_string())
                .collect();
            let mut nodes: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
            back.sort();
            nodes.sort();
            assert_eq!(back, nodes, "{folded}");
        }
        assert_eq!(
            expand_specs(["fit[01-03,07]", "~fit02"], &naming).unwrap(),
            ["fit01", "fit03", "fit07"]
        );
        for bad in [
            "fit[01-",
            "fit[a]",
            "fit[3-1]",
            "fit[0-99999]",
            "fit]1[",
            "fit[[1]]",
            "-o[1]",
        ] {
            assert!(expand_specs([bad], &naming).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_fold_for_people_the_way_clush_shows_them() {
        let names = ["fit07", "fit05", "fit06", "fit37", "node-a", "fit09"];
        assert_eq!(fold_for_display(&names), "fit[05-07,09,37],node-a");
        assert_eq!(fold_for_display(&["fit03"]), "fit03");
        assert_eq!(fold_for_display(&["fit01", "fit02"]), "fit[01-02]");
        assert_eq!(fold_for_display::<&str>(&[]), "");
    }

    #[test]
    fn errors_quote_a_long_word_only_in_part() {
        let long = "x".repeat(1_000_000) + ";";
        let message = expand(&long).unwrap_err().to_string();
        assert!(message.len() < 300, "{}", message.len());
        assert!(message.contains("(1000001 bytes)"));
        assert_eq!(shown("ab"), "\"ab\"");
    }

    #[test]
    fn bad_json_lines_say_what_is_wrong() {
        let message = |line| parse_input_line(line).unwrap_err().to_string();
        assert_eq!(
            message("{ ,"),
            "malformed JSON: key must be a string at line 1 column 3"
        );
        assert!(message(r#"{"node":"fit01"} x"#).starts_with("malformed JSON: trailing characters"));
        assert_eq!(
            message(r#"{"action":"deploy"}"#),
            "JSON object has no string field \"node\""
        );
        assert_eq!(
            message(r#"{"node":2}"#),
            "JSON object has no string field \"node\""
        );
    }
}
