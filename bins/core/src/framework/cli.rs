//! What every tool's `main` is: logging, signals, argument parsing with our exit codes, then the tool's `run`.

use crate::framework::{complete, exit, help, signals, UsageError};
use argh::FromArgs;
use std::ffi::{OsStr, OsString};
use std::process::ExitCode;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a tool's words after `--` are: kept apart from its own arguments
/// (argh would mix them with the node specs), and named in its usage line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterDashes {
    Nothing,
    /// A command for the nodes (deploy, exec).
    Command,
    /// Files to send (cp --to).
    Sources,
}

impl AfterDashes {
    /// The word in usage lines and man pages.
    pub fn name(self) -> &'static str {
        match self {
            AfterDashes::Nothing => "",
            AfterDashes::Command => "command",
            AfterDashes::Sources => "source",
        }
    }

    /// How an error message says it.
    fn what(self) -> &'static str {
        match self {
            AfterDashes::Nothing => "",
            AfterDashes::Command => "the command",
            AfterDashes::Sources => "the sources",
        }
    }
}

/// A tool: its argument struct, its name, and what it does with them.
pub trait Tool: FromArgs + argh::ArgsInfo {
    /// The program name (`baleine-deploy`).
    const NAME: &'static str;
    /// What the words after `--` are, if the tool takes any.
    const AFTER_DASHES: AfterDashes = AfterDashes::Nothing;
    /// Does the tool's work; `after` holds the words after `--`, as given:
    /// file names need not be UTF-8 (a command's words are, see [`parse`]).
    fn run(self, after: Vec<OsString>) -> Result<ExitCode, UsageError>;
}

/// A tool's whole `main`: logging (RUST_LOG, default warnings), signal
/// handling, the completion backend, parsing (exit 2 on usage errors), run.
pub fn main<T: Tool>() -> ExitCode {
    let tool = T::NAME;
    let prefix = tool.to_owned();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(move |f, record| {
            use std::io::Write;
            // Messages carry registry and node text (URLs from a Link
            // header, a node's error): escape control characters, so none
            // can drive the user's terminal.
            writeln!(
                f,
                "{prefix}: {}: {}",
                record.level().as_str().to_lowercase(),
                crate::framework::output::printable(&record.args().to_string())
            )
        })
        .init();
    signals::install_handlers();
    raise_open_files_limit();
    if let Ok(kind) = std::env::var("BALEINE_COMPLETE") {
        complete::candidates(&kind);
        return ExitCode::SUCCESS;
    }
    let parsed = match parse::<T>(tool, T::AFTER_DASHES) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    match parsed.args.run(parsed.trailing) {
        Ok(code) => code,
        // Ctrl-C while the tool waited on its input: interrupted, not a
        // usage error, whatever the wait made of it.
        Err(UsageError(message)) if crate::domain::stop::interrupted() => {
            eprintln!("{tool}: {message}");
            ExitCode::from(exit::interrupted_status())
        }
        Err(UsageError(message)) => {
            eprintln!("{tool}: {message}");
            ExitCode::from(exit::USAGE)
        }
    }
}

/// A fleet holds a few descriptors per node at once (ssh pipes, kept
/// connections' sockets): the soft limit (1024 on most systems) goes up to
/// the hard one, so a large fleet never dies of "Too many open files".
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::debug!("cannot raise the open files limit to {hard}: {e}");
            }
        }
    }
}

/// Parsed arguments, plus the words after `--` when the tool takes some.
pub struct Parsed<T> {
    pub args: T,
    pub trailing: Vec<OsString>,
}

/// A command's words, which [`parse`] has checked are UTF-8.
pub fn command_words(after: Vec<OsString>) -> Vec<String> {
    after
        .into_iter()
        .map(|word| word.to_string_lossy().into_owned())
        .collect()
}

/// Parses the process arguments into `T`. Unlike `argh::from_env`, a usage
/// error exits 2 (not 1), and `--version` works. Words after the first `--`
/// are kept apart when the tool takes some (`after`).
pub fn parse<T: FromArgs + argh::ArgsInfo>(
    tool: &str,
    after: AfterDashes,
) -> Result<Parsed<T>, ExitCode> {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    parse_from(tool, &argv, after)
}

pub fn parse_from<T: FromArgs + argh::ArgsInfo>(
    tool: &str,
    argv: &[OsString],
    after: AfterDashes,
) -> Result<Parsed<T>, ExitCode> {
    let split = if after != AfterDashes::Nothing {
        argv.iter().position(|a| a == "--")
    } else {
        None
    };
    let (ours, trailing) = match split {
        Some(i) => (&argv[..i], argv[i + 1..].to_vec()),
        None => (argv, Vec::new()),
    };
    // Our own options and a command are text (argh reads &str, a command
    // is quoted for the node's shell and docker); files to send are the
    // file system's bytes, whatever they are.
    let not_utf8 = |word: &OsStr| {
        eprintln!("{tool}: the argument {word:?} is not valid UTF-8");
        ExitCode::from(exit::USAGE)
    };
    let ours = ours
        .iter()
        .map(|word| word.to_str().ok_or_else(|| not_utf8(word)))
        .collect::<Result<Vec<&str>, ExitCode>>()?;
    if after == AfterDashes::Command {
        if let Some(word) = trailing.iter().find(|word| word.to_str().is_none()) {
            return Err(not_utf8(word));
        }
    }
    // `--version`, `-V` and `-h` (`--help`, as in most tools people know)
    // are ours only as options, never as an option's value
    // (`--ready-cmd --version` is a command).
    let info = T::get_args_info();
    let takes_value = |word: &str| {
        info.flags.iter().any(|flag| {
            matches!(flag.kind, argh::FlagInfoKind::Option { .. })
                && (flag.long == word || flag.short.is_some_and(|c| word == format!("-{c}")))
        })
    };
    let mut words: Vec<&str> = Vec::new();
    // `-` as an argument of its own is stdin, a positional word, which argh
    // would take for an option: given it after a `--` of argh's.
    let mut dashes: Vec<&str> = Vec::new();
    let mut value_next = false;
    for word in ours {
        let as_option = !std::mem::take(&mut value_next);
        match word {
            "--version" | "-V" if as_option => {
                println!("{tool} {VERSION}");
                return Err(ExitCode::SUCCESS);
            }
            "-h" if as_option => words.push("--help"),
            "-" if as_option => dashes.push("-"),
            other => {
                value_next = as_option && takes_value(other);
                words.push(other);
            }
        }
    }
    if !dashes.is_empty() {
        words.push("--");
        words.extend(dashes);
    }
    match T::from_args(&[tool], &words) {
        Ok(args) => Ok(Parsed { args, trailing }),
        Err(early) if early.status.is_ok() => {
            let width = crate::framework::output::window_size(1).map_or(80, |(_, c)| c.into());
            print!("{}", help::render(tool, &T::get_args_info(), after, width));
            Err(ExitCode::SUCCESS)
        }
        Err(early) => {
            eprintln!("{tool}: {}", early.output.trim_end());
            let stray = early
                .output
                .lines()
                .find_map(|l| l.strip_prefix("Unrecognized argument: "))
                .map(str::trim);
            // An option's typo: the option it is closest to.
            let flags = T::get_args_info().flags.iter().map(|f| f.long);
            let near = stray
                .filter(|word| word.starts_with('-'))
                .and_then(|word| nearest(word, flags.chain(["--version"])));
            match near {
                Some(near) => eprintln!("{tool}: did you mean {near}?"),
                // Else a word (or an option) of a command that lacks its
                // `--`, where there is none and the tool takes one.
                None if stray.is_some() && after != AfterDashes::Nothing && split.is_none() => {
                    eprintln!("{tool}: did you forget `--` before {}?", after.what());
                }
                None => {}
            }
            eprintln!("Run {tool} --help for more information.");
            Err(ExitCode::from(exit::USAGE))
        }
    }
}

/// The candidate closest to `word` (at most two edits away, and closer
/// than half its length), for "did you mean".
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (edits(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2 && *distance * 2 < word.chars().count())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The Damerau–Levenshtein distance (a swap of two letters is one edit).
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}
