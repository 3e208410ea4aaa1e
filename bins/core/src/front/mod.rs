//! `baleine`, the front door: `baleine TOOL ARGS…` runs `baleine-TOOL`, and 0.8's command lines still work.
//!
//! As git does: the tool is found beside `baleine`, else on PATH, and
//! replaces this process (exec), so signals, stdin, stdout and the exit
//! status are the tool's own. A 0.8 line that today's tool would read
//! differently is translated (see [`legacy`]) and the new form said once on
//! stderr; stdout stays the tool's JSON lines.

pub mod legacy;

use crate::domain::config::{self, Config};
use crate::framework::cli::VERSION;
use crate::framework::exit;
use crate::framework::input::is_node_spec;
use crate::jobs::build::BuildArgs;
use crate::jobs::deploy::DeployArgs;
use crate::jobs::destroy::DestroyArgs;
use crate::jobs::exec::ExecArgs;
use crate::jobs::list::ListArgs;
use crate::jobs::ps::PsArgs;
use crate::jobs::save::SaveArgs;
use crate::remote::quote::quote;
use argh::FromArgs;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// `baleine`'s whole `main`.
pub fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(first) = argv.first().and_then(|a| a.to_str()) else {
        eprint!("{}", help());
        return ExitCode::from(exit::USAGE);
    };
    match first {
        "-h" | "--help" | "help" if argv.len() == 1 => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        "--version" | "-V" => {
            println!("baleine {VERSION}");
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    // `baleine help deploy` is `baleine-deploy --help`.
    let (tool, rest): (String, Vec<OsString>) = if first == "help" {
        let tool = argv[1].to_string_lossy().into_owned();
        (tool, vec!["--help".into()])
    } else {
        (first.to_owned(), argv[1..].to_vec())
    };
    if tool.starts_with('-') || tool.contains('/') || tool.is_empty() {
        eprintln!("baleine: {tool:?} is not a tool; baleine --help lists them");
        return ExitCode::from(exit::USAGE);
    }
    let program = format!("baleine-{tool}");
    let Some(path) = find(&program) else {
        let names: Vec<&str> = crate::docs::tools()
            .iter()
            .filter_map(|t| t.name.strip_prefix("baleine-"))
            .collect();
        let near = crate::framework::cli::nearest(&tool, names.iter().copied())
            .map(|near| format!("; did you mean {near}?"))
            .unwrap_or_default();
        eprintln!(
            "baleine: no tool {tool:?} ({program} is neither beside baleine nor on PATH){near} \
             baleine --help lists them"
        );
        return ExitCode::from(exit::USAGE);
    };
    let rest = match rest.iter().map(|a| a.to_str().map(String::from)).collect() {
        Some(words) => {
            let words: Vec<String> = words;
            match read_as_0_8(&tool, &words) {
                Some(translated) => {
                    eprintln!(
                        "baleine: a baleine 0.8 command line; today it reads: {program} {}",
                        quote(&translated)
                    );
                    translated.into_iter().map(OsString::from).collect()
                }
                None => rest,
            }
        }
        // A word that is not UTF-8 is no 0.8 line: the tool says what is wrong.
        None => rest,
    };
    let error = Command::new(&path).arg0(&program).args(rest).exec();
    eprintln!("baleine: cannot run {}: {error}", path.display());
    ExitCode::from(exit::USAGE)
}

/// Today's arguments for a 0.8 line; `None` when today's tool reads the
/// line as it is (a new-style line, or one that means the same to both).
pub fn read_as_0_8(tool: &str, args: &[String]) -> Option<Vec<String>> {
    let config = config::load()
        .or_else(|_| config::load_from(&[], &|_| None))
        .ok()?;
    // Words after `--` are a command for the nodes: not ours to read.
    let marked = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| legacy::only_in_0_8(tool).contains(&a.as_str()));
    if !marked && reads_as_today(tool, args, &config) {
        return None;
    }
    legacy::translate(tool, args).filter(|translated| translated != args)
}

/// Whether today's tool parses `args`, with node specs only as its
/// positional words (`--options -e A=1`: "A=1" is no node, so 0.8's).
fn reads_as_today(tool: &str, args: &[String], config: &Config) -> bool {
    let takes_command = matches!(tool, "deploy" | "exec" | "cp");
    let ours = match args.iter().position(|a| a == "--") {
        Some(at) if takes_command => &args[..at],
        _ => args,
    };
    let words: Vec<&str> = ours.iter().map(String::as_str).collect();
    let nodes = |nodes: &[String]| nodes.iter().all(|n| is_node_spec(n, config));
    let name = format!("baleine-{tool}");
    let name = [name.as_str()];
    match tool {
        "deploy" => DeployArgs::from_args(&name, &words).is_ok_and(|a| nodes(&a.nodes)),
        "destroy" => DestroyArgs::from_args(&name, &words).is_ok_and(|a| nodes(&a.nodes)),
        "save" => SaveArgs::from_args(&name, &words).is_ok_and(|a| nodes(&a.nodes)),
        "ps" => PsArgs::from_args(&name, &words).is_ok_and(|a| nodes(&a.nodes)),
        "exec" => ExecArgs::from_args(&name, &words).is_ok_and(|a| nodes(&a.nodes)),
        "list" => ListArgs::from_args(&name, &words).is_ok(),
        "build" => BuildArgs::from_args(&name, &words).is_ok(),
        _ => true,
    }
}

/// `program` beside this executable, else on PATH.
fn find(program: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(program)));
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .collect()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `baleine --help`: the tools, one line each, and where 0.8 lines go.
pub fn help() -> String {
    let mut text = String::from(
        "Usage: baleine TOOL [ARGS...]   (runs baleine-TOOL)\n\n\
         Docker containers on the nodes of R2Lab, one JSON line per node.\n\nTools:\n",
    );
    for tool in crate::docs::tools() {
        if let Some(short) = tool.name.strip_prefix("baleine-") {
            text += &format!("  {short:<9} {}\n", tool.summary);
        }
    }
    text += "\nbaleine help TOOL (or baleine-TOOL --help) tells more; man baleine has the \
             migration from 0.8,\nwhose command lines baleine still accepts \
             (it says the new form on stderr).\n\n  --version  print the version and exit\n";
    text
}
