//! `.dockerignore` read and applied exactly as Docker (BuildKit) does: the file's bytes, its BOM, comments, `*`, `?`, classes, `**`, `!` exceptions, the parent-result walk.
//!
//! Docker turns each pattern into a Go regular expression by rewriting
//! `*`, `?` and `**` and escaping a few characters, leaving `[...]`, `^` and
//! `\x` to the regex engine (moby/patternmatcher). We build the same
//! regex text and run it with a small automaton of our own that follows
//! Go's RE2 syntax for what that text can hold: a crate with another
//! engine's syntax would read the same pattern differently. What Go would
//! accept and we do not support (`\pL`, `\b`, `\Q`…) is an error naming the
//! line: the file is refused, never read loosely.

/// What was wrong with an ignore file: the line (1-based; 0 for the file)
/// and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreError {
    pub line: usize,
    pub why: String,
}

impl std::fmt::Display for IgnoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}", self.why),
            line => write!(f, "line {line}: {}", self.why),
        }
    }
}

/// Docker reads lines with Go's bufio.Scanner: a line of 64 KiB or more
/// fails the build.
pub const MAX_LINE: usize = 64 * 1024;

/// The patterns of an ignore file, in order.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    patterns: Vec<Pattern>,
}

/// Two rule sets are the same when their patterns are (the automata are
/// what the patterns make).
impl PartialEq for Rules {
    fn eq(&self, other: &Rules) -> bool {
        let words = |rules: &Rules| -> Vec<(bool, Vec<u8>)> {
            rules
                .patterns
                .iter()
                .map(|p| (p.exclusion, p.text.clone()))
                .collect()
        };
        words(self) == words(other)
    }
}

impl Eq for Rules {}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    /// The cleaned pattern, without its `!`, as bytes.
    text: Vec<u8>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// Ends in `**`: a string prefix.
    Prefix,
    /// Starts with `**`: a string suffix.
    Suffix,
    Regex(Automaton),
}

/// Per pattern, whether a directory matched it: what its entries start from.
#[derive(Debug, Clone, Default)]
pub struct Matched(Vec<bool>);

impl Rules {
    /// Reads an ignore file's bytes as Docker's ignorefile.ReadAll and
    /// patternmatcher.New do.
    pub fn parse(bytes: &[u8]) -> Result<Rules, IgnoreError> {
        let mut patterns = Vec::new();
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        if bytes.ends_with(b"\n") || bytes.is_empty() {
            lines.pop();
        }
        for (index, raw) in lines.into_iter().enumerate() {
            let line = index + 1;
            let error = |why: String| IgnoreError { line, why };
            let mut text = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.len() >= MAX_LINE {
                return Err(error(format!(
                    "a line of {} bytes (Docker reads lines of less than {MAX_LINE})",
                    raw.len()
                )));
            }
            if index == 0 {
                text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
            }
            if text.starts_with(b"#") {
                continue;
            }
            let text = trim_space(text);
            if text.is_empty() {
                continue;
            }
            // ignorefile.ReadAll: `!` then trim, Clean, one leading `/` off.
            let (invert, rest) = match text.strip_prefix(b"!") {
                Some(rest) => (true, trim_space(rest)),
                None => (false, text),
            };
            let mut read = Vec::new();
            if !rest.is_empty() {
                read = clean(rest);
                if read.len() > 1 && read[0] == b'/' {
                    read.remove(0);
                }
            }
            if invert {
                read.insert(0, b'!');
            }
            // patternmatcher.New, on that line whole: trim, Clean, then a
            // leading `!` makes an exception (`!../x` cleans to `x`, an
            // exclusion; `/!x` read as `!x`, an exception).
            let line_text = trim_space(&read);
            if line_text.is_empty() {
                continue;
            }
            let whole = clean(line_text);
            let (exclusion, cleaned) = match whole.strip_prefix(b"!") {
                Some(b"") => return Err(error("illegal exclusion pattern: \"!\"".into())),
                Some(rest) => (true, rest.to_vec()),
                None => (false, whole),
            };
            validate_glob(&cleaned).map_err(|why| error(why.into()))?;
            let kind = kind_of(&cleaned).map_err(error)?;
            patterns.push(Pattern {
                exclusion,
                text: cleaned,
                kind,
            });
        }
        Ok(Rules { patterns })
    }

    /// Whether any pattern is an exception (`!`): then an excluded
    /// directory is still walked, for what they bring back.
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative, `/`-separated, cleaned) is excluded, given
    /// its directory's results (`None` at the top): patternmatcher's
    /// MatchesUsingParentResults, which is what decides what is sent.
    pub fn excludes(&self, path: &[u8], parent: Option<&Matched>) -> (bool, Matched) {
        let mut matched = false;
        let mut results = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent.is_some_and(|p| p.0.get(i).copied().unwrap_or(false));
            if !hit {
                // An exception is only tried on what is excluded so far, a
                // pattern only on what is not: that skip is Docker's too.
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && parent.is_none() {
                    // At the top, a parent directory's match counts.
                    let mut at = 0;
                    while let Some(slash) = path[at..].iter().position(|&b| b == b'/') {
                        at += slash;
                        if pattern.matches(&path[..at]) {
                            hit = true;
                            break;
                        }
                        at += 1;
                    }
                }
            }
            results[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        (matched, Matched(results))
    }
}

impl Pattern {
    fn matches(&self, path: &[u8]) -> bool {
        let text = &self.text;
        match &self.kind {
            Kind::Exact => path == text.as_slice(),
            Kind::Prefix => path.starts_with(&text[..text.len() - 2]),
            Kind::Suffix => {
                let suffix = &text[2..];
                path.ends_with(suffix) || (suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            Kind::Regex(automaton) => automaton.matches(&runes(path)),
        }
    }
}

/// Go's strings.TrimSpace on bytes: Unicode white space at both ends;
/// bytes that are not UTF-8 are never space. Linear: only the rune at
/// each end is decoded.
fn trim_space(mut text: &[u8]) -> &[u8] {
    while let Some((c, width)) = first_rune(text) {
        if !c.is_whitespace() {
            break;
        }
        text = &text[width..];
    }
    while let Some((c, width)) = last_rune(text) {
        if !c.is_whitespace() {
            break;
        }
        text = &text[..text.len() - width];
    }
    text
}

/// The first rune of `text` (None for an invalid byte, which is no space).
fn first_rune(text: &[u8]) -> Option<(char, usize)> {
    let head = &text[..text.len().min(4)];
    let valid = match std::str::from_utf8(head) {
        Ok(valid) => valid,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    valid.chars().next().map(|c| (c, c.len_utf8()))
}

/// The last rune of `text` (None for an invalid byte).
fn last_rune(text: &[u8]) -> Option<(char, usize)> {
    (1..=text.len().min(4)).find_map(|width| {
        let tail = std::str::from_utf8(&text[text.len() - width..]).ok()?;
        let mut chars = tail.chars();
        let c = chars.next()?;
        chars.next().is_none().then_some((c, width))
    })
}

/// Go's path.Clean on bytes.
fn clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(last) if *last != b".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(part),
            },
            _ => parts.push(part),
        }
    }
    let mut out = Vec::new();
    if rooted {
        out.push(b'/');
    }
    out.extend(parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Go's filepath.Match syntax check (what patternmatcher.New runs):
/// classes must close, hold ranges with both ends, and `\` must escape
/// something.
fn validate_glob(pattern: &[u8]) -> Result<(), &'static str> {
    let bad = Err("syntax error in pattern");
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' => {
                if i + 1 >= pattern.len() {
                    return bad;
                }
                i += 2;
            }
            b'[' => {
                i += 1;
                if pattern.get(i) == Some(&b'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if pattern.get(i) == Some(&b']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    i = class_char(pattern, i)?;
                    if pattern.get(i) == Some(&b'-') {
                        i = class_char(pattern, i + 1)?;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// filepath.Match's getEsc: one character of a class (maybe escaped), not
/// `-` or `]`, valid UTF-8, and more of the class after it.
fn class_char(pattern: &[u8], mut i: usize) -> Result<usize, &'static str> {
    let bad = Err("syntax error in pattern");
    match pattern.get(i) {
        None | Some(b'-') | Some(b']') => return bad,
        Some(b'\\') => {
            i += 1;
            if i >= pattern.len() {
                return bad;
            }
        }
        _ => {}
    }
    let (c, width) = runes_with_widths(&pattern[i..])[0];
    if c == '\u{FFFD}' && width == 1 {
        return bad;
    }
    i += width;
    if i >= pattern.len() {
        return bad;
    }
    Ok(i)
}

/// What patternmatcher's compile decides: exact, prefix, suffix, or a
/// regex, built as the same text Go builds.
fn kind_of(pattern: &[u8]) -> Result<Kind, String> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = runes(pattern);
    // text/scanner skips a byte order mark that opens its input.
    let start = usize::from(chars.first() == Some(&'\u{FEFF}'));
    let mut regex = String::from("^");
    let mut detected = Detected::Exact;
    let mut i = start;
    let mut step = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        regex += ".*";
                        detected = Detected::Regex;
                    }
                } else {
                    regex += "(.*/)?";
                    detected = Detected::Regex;
                }
                if step == 0 {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                regex += "[^/]*";
                detected = Detected::Regex;
            }
            '?' => {
                regex += "[^/]";
                detected = Detected::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                regex.push('\\');
                regex.push(c);
            }
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    regex.push('\\');
                    regex.push(next);
                    detected = Detected::Regex;
                }
                None => regex.push('\\'),
            },
            '[' | ']' => {
                regex.push(c);
                detected = Detected::Regex;
            }
            other => regex.push(other),
        }
        step += 1;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix,
        Detected::Suffix => Kind::Suffix,
        Detected::Regex => {
            regex.push('$');
            Kind::Regex(Automaton::compile(&regex)?)
        }
    })
}

/// Bytes as Go ranges over them: UTF-8 runes, each byte that is not part
/// of one a U+FFFD of width 1.
fn runes_with_widths(bytes: &[u8]) -> Vec<(char, usize)> {
    let mut out = Vec::new();
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars().map(|c| (c, c.len_utf8())));
        out.extend(chunk.invalid().iter().map(|_| ('\u{FFFD}', 1)));
    }
    out
}

fn runes(bytes: &[u8]) -> Vec<char> {
    runes_with_widths(bytes)
        .into_iter()
        .map(|(c, _)| c)
        .collect()
}

// ---- The regex: Go's RE2 syntax, for what Docker's text can hold ----

/// A set of characters: ranges, negated or not.
#[derive(Debug, Clone)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// One character of the class.
    Char(Class),
    /// Any character but a newline (`.`).
    Any,
    /// The start or the end of the text.
    Begin,
    End,
    /// Goes on at both.
    Split(usize, usize),
    Jump(usize),
    Done,
}

/// A Thompson automaton: matching is linear in the path's length, whatever
/// the pattern (no backtracking for a hostile `*a*a*a*a*b`).
#[derive(Debug, Clone)]
struct Automaton {
    steps: Vec<Step>,
}

/// A parsed piece of regex, before it becomes steps.
#[derive(Debug, Clone)]
enum Node {
    Char(Class),
    Any,
    Begin,
    End,
    Group(Vec<Node>),
    Star(Box<Node>),
    Plus(Box<Node>),
    Quest(Box<Node>),
}

/// The most steps an automaton may have: a pattern line is under 64 KiB.
const MAX_STEPS: usize = 1 << 20;

impl Automaton {
    fn compile(regex: &str) -> Result<Automaton, String> {
        let chars: Vec<char> = regex.chars().collect();
        let mut at = 0;
        let nodes = parse_sequence(&chars, &mut at, 0)?;
        if at != chars.len() {
            return Err("syntax error in pattern: unexpected )".into());
        }
        let mut steps = Vec::new();
        for node in &nodes {
            emit(node, &mut steps)?;
        }
        steps.push(Step::Done);
        Ok(Automaton { steps })
    }

    fn matches(&self, text: &[char]) -> bool {
        let mut current = vec![false; self.steps.len()];
        let mut list = Vec::new();
        self.add(0, 0, text.len(), &mut current, &mut list);
        for (position, &c) in text.iter().enumerate() {
            let mut next = vec![false; self.steps.len()];
            let mut next_list = Vec::new();
            for &state in &list {
                let advance = match &self.steps[state] {
                    Step::Char(class) => class.contains(c),
                    Step::Any => c != '\n',
                    _ => false,
                };
                if advance {
                    self.add(
                        state + 1,
                        position + 1,
                        text.len(),
                        &mut next,
                        &mut next_list,
                    );
                }
            }
            if next_list.is_empty() {
                return false;
            }
            current = next;
            list = next_list;
        }
        let _ = current;
        list.iter().any(|&s| matches!(self.steps[s], Step::Done))
    }

    /// Adds `state` and what it reaches without reading (the splits, jumps
    /// and assertions that hold at `position`).
    fn add(
        &self,
        state: usize,
        position: usize,
        length: usize,
        seen: &mut [bool],
        list: &mut Vec<usize>,
    ) {
        let mut stack = vec![state];
        while let Some(state) = stack.pop() {
            if seen[state] {
                continue;
            }
            seen[state] = true;
            match self.steps[state] {
                Step::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Step::Jump(to) => stack.push(to),
                Step::Begin if position == 0 => stack.push(state + 1),
                Step::End if position == length => stack.push(state + 1),
                Step::Begin | Step::End => {}
                _ => list.push(state),
            }
        }
    }
}

fn emit(node: &Node, steps: &mut Vec<Step>) -> Result<(), String> {
    if steps.len() > MAX_STEPS {
        return Err("pattern too large".into());
    }
    match node {
        Node::Char(class) => steps.push(Step::Char(class.clone())),
        Node::Any => steps.push(Step::Any),
        Node::Begin => steps.push(Step::Begin),
        Node::End => steps.push(Step::End),
        Node::Group(nodes) => {
            for node in nodes {
                emit(node, steps)?;
            }
        }
        Node::Star(inner) => {
            let split = steps.len();
            steps.push(Step::Split(0, 0));
            emit(inner, steps)?;
            steps.push(Step::Jump(split));
            steps[split] = Step::Split(split + 1, steps.len());
        }
        Node::Plus(inner) => {
            let start = steps.len();
            emit(inner, steps)?;
            steps.push(Step::Split(start, steps.len() + 1));
        }
        Node::Quest(inner) => {
            let split = steps.len();
            steps.push(Step::Split(0, 0));
            emit(inner, steps)?;
            steps[split] = Step::Split(split + 1, steps.len());
        }
    }
    Ok(())
}

/// A sequence up to `)` or the end; `depth` counts open groups.
fn parse_sequence(chars: &[char], at: &mut usize, depth: usize) -> Result<Vec<Node>, String> {
    let mut nodes: Vec<Node> = Vec::new();
    while *at < chars.len() {
        let c = chars[*at];
        *at += 1;
        let node = match c {
            ')' if depth > 0 => return Ok(nodes),
            ')' => return Err("syntax error in pattern: unexpected )".into()),
            '(' => {
                if depth > 100 {
                    return Err("syntax error in pattern: groups nested too deep".into());
                }
                let inner = parse_sequence(chars, at, depth + 1)?;
                if chars.get(*at - 1) != Some(&')') {
                    return Err("syntax error in pattern: missing )".into());
                }
                Node::Group(inner)
            }
            '*' | '+' | '?' => {
                let Some(last) = nodes.pop() else {
                    return Err(format!(
                        "syntax error in pattern: missing argument to repetition operator {c}"
                    ));
                };
                if matches!(last, Node::Star(_) | Node::Plus(_) | Node::Quest(_)) {
                    return Err(format!(
                        "syntax error in pattern: invalid nested repetition operator {c}"
                    ));
                }
                let inner = Box::new(last);
                nodes.push(match c {
                    '*' => Node::Star(inner),
                    '+' => Node::Plus(inner),
                    _ => Node::Quest(inner),
                });
                continue;
            }
            '.' => Node::Any,
            '^' => Node::Begin,
            '$' => Node::End,
            '[' => Node::Char(parse_class(chars, at)?),
            '\\' => escape(chars, at)?,
            other => Node::Char(single(other)),
        };
        nodes.push(node);
    }
    if depth > 0 {
        return Err("syntax error in pattern: missing )".into());
    }
    Ok(nodes)
}

fn single(c: char) -> Class {
    Class {
        negated: false,
        ranges: vec![(c, c)],
    }
}

/// `\` and what follows, outside a class.
fn escape(chars: &[char], at: &mut usize) -> Result<Node, String> {
    let Some(&c) = chars.get(*at) else {
        return Err("syntax error in pattern: trailing \\".into());
    };
    *at += 1;
    if let Some(class) = perl_class(c) {
        return Ok(Node::Char(class));
    }
    escaped_char(c).map(|c| Node::Char(single(c)))
}

/// Go's Perl classes (ASCII, as RE2's).
fn perl_class(c: char) -> Option<Class> {
    let (negated, ranges) = match c {
        'd' => (false, vec![('0', '9')]),
        'D' => (true, vec![('0', '9')]),
        's' => (false, vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')]),
        'S' => (true, vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')]),
        'w' => (false, vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]),
        'W' => (true, vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]),
        _ => return None,
    };
    Some(Class { negated, ranges })
}

/// The character an escape stands for: punctuation as itself, and the
/// C escapes; what else Go's syntax allows there is refused here.
fn escaped_char(c: char) -> Result<char, String> {
    match c {
        'a' => Ok('\x07'),
        'f' => Ok('\x0c'),
        't' => Ok('\t'),
        'n' => Ok('\n'),
        'r' => Ok('\r'),
        'v' => Ok('\x0b'),
        c if c.is_ascii_punctuation() => Ok(c),
        c => Err(format!(
            "\\{c} in a pattern: an escape baleine does not read as Docker would (use a plain character or a class)"
        )),
    }
}

/// A class, after its `[`: Go's syntax (`^` negates, `]` first is itself,
/// ranges, `[:alpha:]`, escapes, Perl classes).
fn parse_class(chars: &[char], at: &mut usize) -> Result<Class, String> {
    let bad = |why: &str| Err(format!("syntax error in pattern: {why}"));
    let mut class = Class {
        negated: false,
        ranges: Vec::new(),
    };
    if chars.get(*at) == Some(&'^') {
        class.negated = true;
        *at += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = chars.get(*at) else {
            return bad("missing closing ]");
        };
        if c == ']' && !first {
            *at += 1;
            return Ok(class);
        }
        first = false;
        if c == '[' && chars.get(*at + 1) == Some(&':') {
            if let Some(ranges) = posix_class(chars, at)? {
                class.ranges.extend(ranges);
                continue;
            }
        }
        if c == '\\' {
            if let Some(perl) = chars.get(*at + 1).and_then(|&n| perl_class(n)) {
                *at += 2;
                class.ranges.extend(match perl.negated {
                    false => perl.ranges,
                    true => complement(&perl.ranges),
                });
                continue;
            }
        }
        let lo = class_member(chars, at)?;
        let mut hi = lo;
        if chars.get(*at) == Some(&'-') && chars.get(*at + 1).is_some_and(|&n| n != ']') {
            *at += 1;
            hi = class_member(chars, at)?;
            if hi < lo {
                return bad("invalid character class range");
            }
        }
        class.ranges.push((lo, hi));
    }
}

fn class_member(chars: &[char], at: &mut usize) -> Result<char, String> {
    let Some(&c) = chars.get(*at) else {
        return Err("syntax error in pattern: missing closing ]".into());
    };
    *at += 1;
    if c != '\\' {
        return Ok(c);
    }
    let Some(&next) = chars.get(*at) else {
        return Err("syntax error in pattern: trailing \\".into());
    };
    *at += 1;
    escaped_char(next)
}

/// `[:name:]` (or `[:^name:]`) at `at`; None when it is not one (then `[`
/// is a member).
fn posix_class(chars: &[char], at: &mut usize) -> Result<Option<Vec<(char, char)>>, String> {
    // As Go's parseNamedClass: from `[:` to the first `:]` after it.
    let rest: String = chars[*at..].iter().collect();
    let Some(end) = rest[2..].find(":]").map(|i| i + 2) else {
        return Ok(None);
    };
    let name = &rest[2..end];
    let (negated, name) = match name.strip_prefix('^') {
        Some(name) => (true, name),
        None => (false, name),
    };
    let ranges: Vec<(char, char)> = match name {
        "alnum" => vec![('0', '9'), ('A', 'Z'), ('a', 'z')],
        "alpha" => vec![('A', 'Z'), ('a', 'z')],
        "ascii" => vec![('\0', '\x7f')],
        "blank" => vec![('\t', '\t'), (' ', ' ')],
        "cntrl" => vec![('\0', '\x1f'), ('\x7f', '\x7f')],
        "digit" => vec![('0', '9')],
        "graph" => vec![('!', '~')],
        "lower" => vec![('a', 'z')],
        "print" => vec![(' ', '~')],
        "punct" => vec![('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        "space" => vec![('\t', '\r'), (' ', ' ')],
        "upper" => vec![('A', 'Z')],
        "word" => vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
        "xdigit" => vec![('0', '9'), ('A', 'F'), ('a', 'f')],
        _ => {
            return Err(format!(
                "syntax error in pattern: invalid character class range [:{name}:]"
            ))
        }
    };
    *at += rest[..end + 2].chars().count();
    Ok(Some(match negated {
        false => ranges,
        true => complement(&ranges),
    }))
}

/// Every character outside `ranges` (sorted, not overlapping).
fn complement(ranges: &[(char, char)]) -> Vec<(char, char)> {
    let mut out = Vec::new();
    let mut next = 0u32;
    for &(lo, hi) in ranges {
        if (lo as u32) > next {
            if let (Some(a), Some(b)) = (char_at_or_after(next), char_before(lo as u32)) {
                out.push((a, b));
            }
        }
        next = hi as u32 + 1;
    }
    if let Some(a) = char_at_or_after(next) {
        out.push((a, char::MAX));
    }
    out
}

fn char_at_or_after(n: u32) -> Option<char> {
    (n..=char::MAX as u32).find_map(char::from_u32)
}

fn char_before(n: u32) -> Option<char> {
    (0..n).rev().find_map(char::from_u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `path` is excluded by `patterns`, walking down from the top
    /// as the context walker does.
    fn excluded(patterns: &str, path: &str) -> bool {
        let rules = Rules::parse(patterns.as_bytes()).unwrap();
        let mut parent: Option<Matched> = None;
        let mut at = 0;
        loop {
            let end = path[at..].find('/').map_or(path.len(), |i| at + i);
            let (out, matched) = rules.excludes(&path.as_bytes()[..end], parent.as_ref());
            if end == path.len() {
                return out;
            }
            parent = Some(matched);
            at = end + 1;
        }
    }

    #[test]
    fn patterns_are_anchored_at_the_context_root() {
        assert!(excluded("*.go", "main.go"));
        assert!(!excluded("*.go", "cmd/main.go"));
        assert!(excluded("foo", "foo/bar"));
        assert!(!excluded("foo", "sub/foo"));
        // A trailing slash is cleaned away: a file matches too.
        assert!(excluded("foo/", "foo"));
        assert!(excluded("/foo", "foo"));
    }

    #[test]
    fn exceptions_bring_back_files_of_an_excluded_directory() {
        assert!(!excluded("build\n!build/keep.txt", "build/keep.txt"));
        assert!(excluded("build\n!build/keep.txt", "build/x"));
        assert!(!excluded("*\n!*.md", "README.md"));
        assert!(excluded("*\n!*.md", "docs/a.md"));
        assert!(!excluded("*\n!**/*.md", "docs/a.md"));
        assert!(!excluded(
            "node_modules\n!node_modules/*/package.json",
            "node_modules/x/package.json"
        ));
    }

    #[test]
    fn classes_and_escapes_read_as_go_reads_them() {
        // `!` in a class is a member, `^` negates, and a negated class
        // matches `/`.
        assert!(excluded("[!a]bc", "abc"));
        assert!(excluded("[!a]bc", "!bc"));
        assert!(!excluded("[!a]bc", "xbc"));
        assert!(excluded("a[^x]b", "a/b"));
        assert!(!excluded("a[^x]b", "axb"));
        assert!(excluded("*.[pk]em", "server.pem"));
        assert!(excluded("[Tt]oken.txt", "Token.txt"));
        assert!(excluded("file\\d", "file1"));
        assert!(!excluded("file\\d", "filed"));
        assert!(excluded("[[:digit:]]*", "1abc"));
        assert!(!excluded("[[:digit:]]*", "abc"));
        // `*` in a class becomes Docker's `[^/]*` there.
        assert!(excluded("a[*]", "a]"));
        assert!(!excluded("a[*]", "a*"));
        // An unescaped ^ anchors, in a regex.
        assert!(excluded("^foo*", "foobar"));
        assert!(!excluded("^foo*", "^foobar"));
        assert!(excluded("^foo", "^foo"));
    }

    #[test]
    fn double_stars_as_docker_has_them() {
        for (pattern, path, out) in [
            ("a**b", "ab", true),
            ("a**b", "a/b", true),
            ("a**b", "ax/y/b", true),
            ("a**b", "axb", false),
            ("**foo", "barfoo", true),
            ("**foo", "x/barfoo", true),
            ("**/foo", "foo", true),
            ("**/foo", "x/foo/y", true),
            ("**/foo", "barfoo", false),
            ("foo**", "foobar/baz", true),
            ("dir/**", "dir/a", true),
            ("dir/**", "dir", false),
            ("{a,b}", "{a,b}", true),
            ("{a,b}", "a", false),
            ("Foo", "foo", false),
            (".*", ".git/config", true),
            (".*", "a/.env", false),
            ("a??", "a\u{e9}", false),
            ("a??", "abc", true),
        ] {
            assert_eq!(excluded(pattern, path), out, "{pattern} {path}");
        }
    }

    #[test]
    fn the_file_is_read_as_go_reads_it() {
        // A comment only at column 0; spaces trimmed; one \r dropped.
        assert!(excluded("  #x", "#x"));
        assert!(!excluded("#x", "#x"));
        assert!(excluded("secret \r\n", "secret"));
        // The BOM of the first line only.
        assert!(excluded("\u{feff}#c\nkey", "key"));
        assert!(excluded("\u{feff}secret", "secret"));
        assert!(excluded("a\n\u{feff}x", "\u{feff}x"));
        // Latin-1 bytes are bytes: the other lines still count.
        let rules = Rules::parse(b"# caf\xe9\nsecret\n*.env").unwrap();
        assert!(rules.excludes(b"secret", None).0);
        assert!(rules.excludes(b"prod.env", None).0);
        assert!(
            Rules::parse(b"caf\xe9")
                .unwrap()
                .excludes(b"caf\xe9", None)
                .0
        );
    }

    #[test]
    fn the_whole_line_is_cleaned_again_as_new_does() {
        // `!../../secret` cleans to `secret`: an exclusion, not an exception.
        assert!(excluded("!../../secret", "secret"));
        // A space left by the first Clean is trimmed by the second.
        assert!(excluded("x/../ secret", "secret"));
        // `/!foo` is read as the exception `!foo`.
        assert!(!excluded("*\n/!foo", "foo"));
    }

    #[test]
    fn a_long_line_of_spaces_is_trimmed_in_linear_time() {
        let line = " ".repeat(MAX_LINE - 1);
        assert!(Rules::parse(line.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn quirks_of_the_parent_results_walk() {
        // Decided with the parent's results, not the last line alone.
        assert!(excluded("a/b\n!a", "a/b"));
        assert!(!excluded("a\n!a/b\na", "a/b"));
        assert!(excluded("a\n!a/b\na", "a/c"));
    }

    #[test]
    fn what_docker_refuses_is_refused_with_its_line() {
        for (text, line) in [
            ("ok\n!", 2),
            ("!/", 1),
            ("a[", 1),
            ("[]a]", 1),
            ("[-x]", 1),
            ("[x-]", 1),
            ("foo\\ ", 1),
            ("x\n[z-a]", 2),
            ("[[:foo:]]", 1),
            ("\\pL", 1),
        ] {
            let error = Rules::parse(text.as_bytes()).unwrap_err();
            assert_eq!(error.line, line, "{text:?}: {error}");
        }
        let long = "x".repeat(MAX_LINE);
        assert_eq!(Rules::parse(long.as_bytes()).unwrap_err().line, 1);
        // "/" alone is harmless, and matches nothing.
        assert!(!Rules::parse(b"/").unwrap().excludes(b"a", None).0);
    }

    #[test]
    fn a_hostile_pattern_costs_linear_time() {
        let rules = Rules::parse("*a*a*a*a*a*a*a*a*a*a*a*b".as_bytes()).unwrap();
        let path = "a".repeat(4000);
        assert!(!rules.excludes(path.as_bytes(), None).0);
    }
}
