//! Man pages and shell completions, generated from the same definitions as `--help` (each job's arguments).
//!
//! `make man` writes them into man/ and completions/; a test regenerates
//! them in memory and fails when the committed files drift.

use crate::framework::cli::{AfterDashes, Tool as CliTool};
use crate::jobs::build::BuildArgs;
use crate::jobs::cp::CpArgs;
use crate::jobs::deploy::DeployArgs;
use crate::jobs::destroy::DestroyArgs;
use crate::jobs::exec::ExecArgs;
use crate::jobs::list::ListArgs;
use crate::jobs::logs::LogsArgs;
use crate::jobs::ps::PsArgs;
use crate::jobs::rdsh::RdshArgs;
use crate::jobs::rmi::RmiArgs;
use crate::jobs::save::SaveArgs;
use argh::{ArgsInfo, CommandInfoWithArgs, FlagInfo, FlagInfoKind, Optionality};

/// What a value on the command line is, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completer {
    /// Node names of ALL_SCOPE.
    Nodes,
    /// Image references from the registry (bounded in time).
    Images,
    /// Repository names from the registry (bounded in time).
    Repositories,
    File,
    Directory,
    Words(&'static [&'static str]),
    /// Free text: offer nothing.
    Nothing,
}

/// One tool as the documentation sees it.
pub struct Tool {
    pub name: &'static str,
    /// The NAME line of the man page.
    pub summary: &'static str,
    pub info: CommandInfoWithArgs,
    /// What the positional arguments are.
    pub positional: Completer,
    /// Completion of option values, by long name; options not listed take free text.
    pub values: &'static [(&'static str, Completer)],
    /// What the words after `--` are, if any.
    pub after_dashes: AfterDashes,
}

/// Every tool, in the order the README presents them.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "baleine-deploy",
            summary: "run an image as the managed container on R2Lab nodes",
            info: DeployArgs::get_args_info(),
            positional: Completer::Nodes,
            values: &[
                ("image", Completer::Images),
                ("pull", Completer::Words(&["always", "missing", "never"])),
            ],
            after_dashes: <DeployArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "baleine-destroy",
            summary: "remove the managed container from R2Lab nodes",
            info: DestroyArgs::get_args_info(),
            positional: Completer::Nodes,
            values: &[],
            after_dashes: <DestroyArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "baleine-save",
            summary: "save the managed container of R2Lab nodes as images in the registry",
            info: SaveArgs::get_args_info(),
            positional: Completer::Nodes,
            values: &[],
            after_dashes: <SaveArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "baleine-list",
            summary: "list the images in the R2Lab registry",
            info: ListArgs::get_args_info(),
            positional: Completer::Repositories,
            values: &[],
            after_dashes: <ListArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "baleine-ps",
            summary: "show the managed container of R2Lab nodes",
            info: PsArgs::get_args_info(),
            positional: Completer::Nodes,
            values: &[],
            after_dashes: <PsArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "baleine-exec",
            summary: "run a command in the managed container of R2Lab nodes",
            info: ExecArgs::get_args_info(),
            positional: Completer::Nodes,
            values: &[
                ("stdin", Completer::File),
                ("output-dir", Completer::Directory),
            ],
            after_dashes: <ExecArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "baleine-logs",
            summary: "get the logs of the managed container of R2Lab nodes",
            info: LogsArgs::get_args_info(),
            positional: Completer::Nodes,
            values: &[("output-dir", Completer::Directory)],
            after_dashes: <LogsArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "baleine-cp",
            summary: "copy files into or out of the managed container of R2Lab nodes",
            info: CpArgs::get_args_info(),
            positional: Completer::Nodes,
            values: &[("output-dir", Completer::Directory)],
            after_dashes: <CpArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "baleine-rmi",
            summary: "delete tags from the R2Lab registry",
            info: RmiArgs::get_args_info(),
            positional: Completer::Images,
            values: &[],
            after_dashes: <RmiArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "baleine-build",
            summary: "build an image and push its tags to the R2Lab registry",
            info: BuildArgs::get_args_info(),
            positional: Completer::Directory,
            values: &[
                ("file", Completer::File),
                ("on", Completer::Nodes),
                ("log", Completer::File),
            ],
            after_dashes: <BuildArgs as CliTool>::AFTER_DASHES,
        },
        Tool {
            name: "rdsh",
            summary: "login shell that puts the container user inside the node's container",
            info: RdshArgs::get_args_info(),
            positional: Completer::Nothing,
            values: &[],
            after_dashes: AfterDashes::Nothing,
        },
    ]
}

/// Every generated file: path under the repository, and contents.
pub fn generated_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for tool in tools() {
        files.push((format!("man/{}.1", tool.name), man_page(&tool)));
        if tool.name == "rdsh" {
            continue; // a login shell, started by sshd: nobody completes its arguments
        }
        files.push((
            format!("completions/bash/{}", tool.name),
            bash_completion(&tool),
        ));
        files.push((
            format!("completions/zsh/_{}", tool.name),
            zsh_completion(&tool),
        ));
        files.push((
            format!("completions/fish/{}.fish", tool.name),
            fish_completion(&tool),
        ));
    }
    files.push(("man/baleine.conf.5".into(), config_page()));
    files.push(("man/baleine.1".into(), front_page()));
    files.extend(front_completions());
    files
}

/// The date man pages carry: fixed, so that regenerating changes nothing.
const RELEASE_DATE: &str = "2026-11-22";
const GENERATED: &str = "generated by `make man` from bins/core/src/jobs/; do not edit";

// ------------------------------------------------------------------ man pages

/// Escapes text for roff: backslashes, hyphens (so they stay ASCII when
/// rendered and copy-paste into a shell), and leading dots and quotes.
pub fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|line| {
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn flag_synopsis(long: &str, short: Option<char>, kind: &FlagInfoKind) -> String {
    let name = match short {
        Some(c) => format!("\\fB\\-{c}\\fR"),
        None => format!("\\fB{}\\fR", roff(long)),
    };
    match kind {
        FlagInfoKind::Switch => name,
        FlagInfoKind::Option { arg_name } => format!("{name} \\fI{}\\fR", roff(arg_name)),
    }
}

use crate::framework::help::unbraced;

pub fn man_page(tool: &Tool) -> String {
    let name = roff(tool.name);
    let mut page = format!(
        ".\\\" {GENERATED}\n.TH {} 1 {RELEASE_DATE} \"baleine {}\" \"baleine manual\"\n.SH NAME\n{name} \\- {}\n.SH SYNOPSIS\n.B {name}\n",
        roff(&tool.name.to_uppercase()),
        crate::framework::cli::VERSION,
        roff(tool.summary)
    );
    page += &synopsis(tool);
    page += &description_and_options(tool);
    page += &arguments_and_examples(tool);
    page += &exit_status(tool);
    page += &environment_and_files(tool);
    page += &see_also(tool);
    page
}

/// The SYNOPSIS lines after the name: options, arguments, what follows `--`.
fn synopsis(tool: &Tool) -> String {
    let info = &tool.info;
    let mut page = String::new();
    for flag in info.flags.iter().filter(|f| f.long != "--help") {
        let text = flag_synopsis(flag.long, flag.short, &flag.kind);
        match flag.optionality {
            Optionality::Required => page += &format!("{text}\n"),
            _ => page += &format!("[{text}]\n"),
        }
    }
    for positional in info.positionals {
        page += &format!("[\\fI{}\\fR ...]\n", roff(positional.name));
    }
    match tool.after_dashes {
        AfterDashes::Nothing => {}
        AfterDashes::Command => page += "[\\fB\\-\\-\\fR \\fIcommand\\fR [\\fIargument\\fR ...]]\n",
        AfterDashes::Sources => page += "[\\fB\\-\\-\\fR \\fIsource\\fR ...]\n",
    }
    page
}

/// DESCRIPTION (with the notes) and OPTIONS.
fn description_and_options(tool: &Tool) -> String {
    let info = &tool.info;
    let mut page = String::new();
    page += &format!(".SH DESCRIPTION\n{}\n", roff(&unbraced(info.description)));
    for note in info.notes {
        page += &format!(".PP\n{}\n", roff(&unbraced(note)));
    }
    page += ".SH OPTIONS\n";
    for flag in info.flags.iter().filter(|f| f.long != "--help") {
        let long = match &flag.kind {
            FlagInfoKind::Switch => format!("\\fB{}\\fR", roff(flag.long)),
            FlagInfoKind::Option { arg_name } => {
                format!("\\fB{}\\fR \\fI{}\\fR", roff(flag.long), roff(arg_name))
            }
        };
        let both = match flag.short {
            Some(c) => format!("\\fB\\-{c}\\fR, {long}"),
            None => long,
        };
        page += &format!(".TP\n{both}\n{}\n", roff(&sentence(flag.description)));
    }
    page += ".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nPrint the usage and exit.\n.TP\n\\fB\\-V\\fR, \\fB\\-\\-version\\fR\nPrint the version and exit.\n";
    page
}

/// ARGUMENTS and EXAMPLES, when the tool has some.
fn arguments_and_examples(tool: &Tool) -> String {
    let info = &tool.info;
    let mut page = String::new();
    if !info.positionals.is_empty() {
        page += ".SH ARGUMENTS\n";
        for positional in info.positionals {
            page += &format!(
                ".TP\n\\fI{}\\fR\n{}\n",
                roff(positional.name),
                roff(&sentence(positional.description))
            );
        }
    }
    if !info.examples.is_empty() {
        page += ".SH EXAMPLES\n";
        let examples: Vec<String> = info
            .examples
            .iter()
            .map(|e| format!(".EX\n{}\n.EE\n", roff(&unbraced(e))))
            .collect();
        page += &examples.join(".PP\n");
    }
    page
}

/// EXIT STATUS: success, then the codes the tool states.
fn exit_status(tool: &Tool) -> String {
    let info = &tool.info;
    let mut page = String::new();
    page += ".SH EXIT STATUS\n.TP\n.B 0\nSuccess.\n";
    for code in info.error_codes {
        page += &format!(
            ".TP\n.B {}\n{}\n",
            code.code,
            roff(&sentence(code.description))
        );
    }
    page
}

/// ENVIRONMENT and FILES: configuration, $NODES, the state files.
fn environment_and_files(tool: &Tool) -> String {
    let mut page = String::new();
    if tool.name != "rdsh" {
        page += ".SH ENVIRONMENT\n.TP\n.B BALEINE_CONFIG\nA configuration file read after the system and user ones.\n\
                 .TP\n.B BALEINE_\\fIKEY\\fR\nOverrides configuration key \\fIKEY\\fR, e.g. \\fBBALEINE_PARALLEL=8\\fR.\n";
        if tool.positional == Completer::Nodes {
            page += ".TP\n.B NODES\nThe nodes, when none are given and stdin is a terminal (rhubarbe's convention).\n";
        }
        page += ".TP\n.B RUST_LOG\nLog level on stderr (default: warn).\n";
    }
    page += ".SH FILES\n.TP\n.I /etc/baleine/baleine.conf\nSystem configuration.\n";
    if tool.name != "rdsh" {
        page += ".TP\n.I ~/.config/baleine/baleine.conf\nUser configuration.\n";
    }
    if tool.name.starts_with("baleine-") {
        page += ".TP\n.I $XDG_STATE_HOME/baleine/\n(default \\fI~/.local/state/baleine/\\fR): this run's records \
                 too, failed ones included, one JSON\\-lines file per run named by its time, tool, nodes \
                 and images (the last 50 runs of each tool), \\fIlatest\\-TOOL.jsonl\\fR naming the \
                 last run of the tool to have ended having touched a node (an empty run leaves it); \
                 the summary names the file when something failed. On a terminal, stderr shows a progress line and a \
                 summary, and Ctrl\\-C says what it stops: see \\fBbaleine\\-records\\fR(7), ON A TERMINAL.\n";
    }
    page
}

/// SEE ALSO: the other tools and pages.
fn see_also(tool: &Tool) -> String {
    let mut page = String::new();
    let others: Vec<String> = tools()
        .iter()
        .filter(|t| t.name != tool.name)
        .map(|t| format!(".BR {} (1),", roff(t.name)))
        .chain([
            ".BR baleine.conf (5),".into(),
            ".BR baleine\\-records (7)".into(),
        ])
        .collect();
    page += &format!(".SH SEE ALSO\n{}\n", others.join("\n"));
    page
}

/// Each 0.8 habit and what it is now: baleine(1)'s and the README's
/// migration table (0.8 lines are read by `front::legacy`) (a test checks the README has every line).
pub const MIGRATION: &[(&str, &str)] = &[
    (
        "baleine deploy -i IMG --nodes 1-5 ~3",
        "baleine-deploy -i IMG 1-5 ~3 (node specs are plain words)",
    ),
    (
        "baleine deploy -i IMG --options -e A=1 -v /x:/y",
        "baleine-deploy -i IMG --options \"-e A=1 -v /x:/y\" (one word, split like a shell would)",
    ),
    (
        "baleine deploy -i IMG --command sh -c \"echo hi\"",
        "baleine-deploy -i IMG -- sh -c \"echo hi\" (each word reaches the container as typed)",
    ),
    (
        "baleine deploy -i IMG --bootstrap",
        "baleine-deploy -i IMG --bootstrap default (DEFAULT_BOOTSTRAP_IMAGE)",
    ),
    ("baleine destroy -f --nodes 1-5", "baleine-destroy -y 1-5"),
    (
        "baleine save --name exp --node fit01",
        "baleine-save -n exp fit01",
    ),
    ("baleine list -d exp", "baleine-list -d exp"),
    (
        "baleine build -f Dockerfile --tags exp:v1 exp:latest",
        "baleine-build -f Dockerfile -t exp:v1 -t exp:latest .",
    ),
    (
        "baleine build -u https://host/repo.git --tags exp:v1",
        "baleine-build -t exp:v1 https://host/repo.git",
    ),
    (
        "REGISTRY_URL=host:5000 baleine list",
        "the same: 0.8's keys still read plain variables (BALEINE_REGISTRY_URL wins)",
    ),
    (
        "SAVE_PORT = 80 in baleine.conf",
        "the same names as before: the protocol's default port is left out",
    ),
    (
        "DNS_ADDR unset: --dns 192.168.3.100",
        "DNS_ADDR unset: the node's resolvers; set DNS_ADDR to keep 0.8's",
    ),
];

/// baleine(1): the front door, its tools, and the migration from 0.8.
pub fn front_page() -> String {
    let mut page = format!(
        ".\\\" {GENERATED}\n.TH BALEINE 1 {RELEASE_DATE} \"baleine {}\" \"baleine manual\"\n\
         .SH NAME\nbaleine \\- run the baleine tools, and baleine 0.8's command lines\n\
         .SH SYNOPSIS\n.B baleine\n\\fITOOL\\fR [\\fIARGS\\fR ...]\n.br\n.B baleine help\n\\fITOOL\\fR\n\
         .SH DESCRIPTION\n\\fBbaleine\\fR \\fITOOL\\fR runs \\fBbaleine\\-\\fR\\fITOOL\\fR, found beside \\fBbaleine\\fR \
         or on \\fBPATH\\fR, with the same arguments, stdin, stdout and exit status. The tools:\n",
        crate::framework::cli::VERSION
    );
    for tool in tools() {
        if let Some(short) = tool.name.strip_prefix("baleine-") {
            page += &format!(
                ".TP\n.B {}\n{}\n",
                roff(short),
                roff(&sentence(tool.summary))
            );
        }
    }
    page += ".SH MIGRATION FROM 0.8\nThe command lines of baleine 0.8 still work through \\fBbaleine\\fR: \
             a line that today's tool would read differently (several words after \\fB\\-\\-nodes\\fR, \
             \\fB\\-\\-options\\fR or \\fB\\-\\-tags\\fR, \\fB\\-\\-command\\fR, \\fB\\-\\-bootstrap\\fR without value, \
             \\fBdestroy \\-f\\fR, \\fBsave \\-\\-name \\-\\-node\\fR, \\fBbuild \\-u\\fR) is read as 0.8 read it, \
             and the new form is said once on stderr. Each 0.8 habit and what it is now:\n";
    for (old, new) in MIGRATION {
        page += &format!(".TP\n.B {}\n{}\n", roff(old), roff(new));
    }
    page += ".SH EXIT STATUS\nThe tool's. \\fB2\\fR when no such tool exists.\n.SH SEE ALSO\n";
    let others: Vec<String> = tools()
        .iter()
        .map(|t| format!(".BR {} (1),", roff(t.name)))
        .chain([
            ".BR baleine.conf (5),".into(),
            ".BR baleine\\-records (7)".into(),
        ])
        .collect();
    page += &others.join("\n");
    page += "\n";
    page
}

/// Completions of `baleine`: its first word is a tool (each tool's own
/// completion is for `baleine-TOOL`).
fn front_completions() -> Vec<(String, String)> {
    let names: Vec<&str> = tools()
        .iter()
        .filter_map(|t| t.name.strip_prefix("baleine-"))
        .chain(["help"])
        .collect();
    let names = names.join(" ");
    let bash = [
        format!("# bash completion for baleine ({GENERATED})"),
        "_baleine() {".into(),
        "    if [ \"$COMP_CWORD\" -eq 1 ]; then".into(),
        format!("        COMPREPLY=($(compgen -W \"{names}\" -- \"${{COMP_WORDS[1]}}\"))"),
        "    fi".into(),
        "}".into(),
        "complete -o default -F _baleine baleine\n".into(),
    ];
    let zsh = [
        "#compdef baleine".into(),
        format!("# zsh completion for baleine ({GENERATED})"),
        String::new(),
        format!("_arguments '1:tool:({names})' '*::argument:_files'\n"),
    ];
    let fish = [
        format!("# fish completion for baleine ({GENERATED})"),
        format!("complete -c baleine -n __fish_use_subcommand -f -a '{names}'\n"),
    ];
    vec![
        ("completions/bash/baleine".into(), bash.join("\n")),
        ("completions/zsh/_baleine".into(), zsh.join("\n")),
        ("completions/fish/baleine.fish".into(), fish.join("\n")),
    ]
}

/// Descriptions in argh are lowercase fragments; a man page wants sentences.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.extend(chars);
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// baleine.conf(5), from the configuration's own key table.
pub fn config_page() -> String {
    let mut page = format!(
        ".\\\" generated by `make man` from bins/core/src/config.rs; do not edit\n\
         .TH BALEINE.CONF 5 {RELEASE_DATE} \"baleine {}\" \"baleine manual\"\n\
         .SH NAME\nbaleine.conf \\- configuration of the baleine tools\n\
         .SH DESCRIPTION\nEvery baleine tool reads, in this order, later values overriding earlier ones:\n\
         .IP 1. 4\n.I /etc/baleine/baleine.conf\n\
         .IP 2. 4\n.I $XDG_CONFIG_HOME/baleine/baleine.conf\n(default \\fI~/.config/baleine/baleine.conf\\fR)\n\
         .IP 3. 4\nthe file named by \\fBBALEINE_CONFIG\\fR, which must exist\n\
         .IP 4. 4\nfor the keys baleine 0.8 had ({}), plain environment variables named like them, as 0.8 read them \
         (\\fBREGISTRY_URL=host:5000 baleine list\\fR)\n\
         .IP 5. 4\nenvironment variables \\fBBALEINE_\\fR\\fIKEY\\fR, for every key (they win over the plain ones)\n\
         .PP\nMissing files are skipped. \\fBrdsh\\fR reads only the first, and no environment.\n\
         .SH FORMAT\nOne setting per line, \\fBKEY = \"value\"\\fR or \\fBKEY = value\\fR; \\fB#\\fR starts a comment; \
         inside double quotes, \\fB\\e\"\\fR and \\fB\\e\\e\\fR escape. A malformed line is an error naming file and line; \
         an unknown key is a warning. The files of baleine 0.8 are read as they are.\n\
         .SH KEYS\n",
        crate::framework::cli::VERSION,
        crate::domain::config::plain_env_keys().join(", ")
    );
    for key in crate::domain::config::KEYS {
        let default = if key.default.is_empty() {
            "empty".to_owned()
        } else {
            format!("\\fB{}\\fR", roff(key.default))
        };
        page += &format!(
            ".TP\n.B {}\n{} Default: {default}.\n",
            key.name,
            roff(&sentence(key.description))
        );
    }
    page += ".SH EXAMPLE\n.EX\nREGISTRY_URL = \"faraday.repo\"\nSAVE_URL = \"faraday.repo\"\nREGISTRY_PROTOCOL = \"http://\"\n\
             SSH = \"ssh \\-F /etc/baleine/ssh_config\"\nPARALLEL = 37\n.EE\n\
             .SH SEE ALSO\n.BR baleine\\-deploy (1),\n.BR baleine\\-records (7),\n.BR rdsh (1)\n";
    page
}

// ------------------------------------------------------------------ completions

/// The shell command printing candidates of a dynamic kind, one a line.
fn candidates_command(tool: &str, completer: Completer) -> Option<String> {
    let kind = match completer {
        Completer::Nodes => "nodes",
        Completer::Images => "images",
        Completer::Repositories => "repositories",
        _ => return None,
    };
    Some(format!("env BALEINE_COMPLETE={kind} {tool} 2>/dev/null"))
}

fn value_completer(tool: &Tool, long: &str) -> Completer {
    tool.values
        .iter()
        .find(|(name, _)| format!("--{name}") == long)
        .map_or(Completer::Nothing, |(_, c)| *c)
}

fn options(tool: &Tool) -> impl Iterator<Item = &FlagInfo<'static>> {
    tool.info.flags.iter().filter(|f| f.long != "--help")
}

fn bash_words(tool: &Tool, completer: Completer) -> String {
    match completer {
        Completer::Words(words) => format!(
            "COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))",
            words.join(" ")
        ),
        Completer::File => "COMPREPLY=($(compgen -f -- \"$cur\"))".into(),
        Completer::Directory => "COMPREPLY=($(compgen -d -- \"$cur\"))".into(),
        Completer::Nothing => "COMPREPLY=()".into(),
        // Candidates come from a registry: read them line by line and never
        // let bash expand them (`compgen -W "$(...)"` would run `$(...)` in
        // a name). The left side of `[[ == ]]` is not a pattern.
        dynamic => format!(
            "COMPREPLY=(); local c; while IFS= read -r c; do [[ $c == \"$cur\"* ]] && COMPREPLY+=(\"$c\"); done < <({})",
            candidates_command(tool.name, dynamic).unwrap_or_default()
        ),
    }
}

pub fn bash_completion(tool: &Tool) -> String {
    let function = format!("_{}", tool.name.replace('-', "_"));
    let mut words: Vec<String> = Vec::new();
    let mut value_cases = String::new();
    for flag in options(tool) {
        words.push(flag.long.to_owned());
        let mut names = vec![flag.long.to_owned()];
        if let Some(c) = flag.short {
            words.push(format!("-{c}"));
            names.push(format!("-{c}"));
        }
        if let FlagInfoKind::Option { .. } = flag.kind {
            let action = bash_words(tool, value_completer(tool, flag.long));
            value_cases += &format!(
                "        {})\n            {action}\n            ;;\n",
                names.join("|")
            );
        }
    }
    words.extend(["--help".into(), "--version".into()]);
    let after_command = if tool.after_dashes != AfterDashes::Nothing {
        "    local i\n    for ((i = 1; i < cword; i++)); do\n        [[ ${words[i]} == -- ]] && return 0\n    done\n"
    } else {
        ""
    };
    format!(
        "# bash completion for {name} ({GENERATED})\n\
         {function}() {{\n\
         \x20   local cur prev words cword\n\
         \x20   # Image references hold ':' which bash splits words on; bash-completion knows better.\n\
         \x20   if declare -F _get_comp_words_by_ref >/dev/null; then\n\
         \x20       _get_comp_words_by_ref -n : cur prev words cword\n\
         \x20   else\n\
         \x20       cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} words=(\"${{COMP_WORDS[@]}}\") cword=$COMP_CWORD\n\
         \x20   fi\n\
         {after_command}\
         \x20   case $prev in\n\
         {value_cases}\
         \x20       *)\n\
         \x20           if [[ $cur == -* ]]; then\n\
         \x20               COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n\
         \x20           else\n\
         \x20               {}\n\
         \x20           fi\n\
         \x20           ;;\n\
         \x20   esac\n\
         \x20   if declare -F __ltrim_colon_completions >/dev/null; then\n\
         \x20       __ltrim_colon_completions \"$cur\"\n\
         \x20   fi\n\
         }}\n\
         complete -F {function} {name}\n",
        words.join(" "),
        bash_words(tool, tool.positional),
        name = tool.name,
    )
}

/// Text inside a zsh `_arguments` spec: `'...[description]:...'`.
fn zsh_text(text: &str) -> String {
    text.replace('\'', "'\\''")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(':', "\\:")
}

fn zsh_action(tool: &Tool, completer: Completer) -> String {
    match completer {
        Completer::Words(words) => format!("({})", words.join(" ")),
        Completer::File => "_files".into(),
        Completer::Directory => "_files -/".into(),
        Completer::Nothing => " ".into(),
        dynamic => format!(
            "{{_baleine_candidates {} {}}}",
            tool.name,
            candidate_kind(dynamic)
        ),
    }
}

fn candidate_kind(completer: Completer) -> &'static str {
    match completer {
        Completer::Nodes => "nodes",
        Completer::Images => "images",
        _ => "repositories",
    }
}

pub fn zsh_completion(tool: &Tool) -> String {
    let mut specs: Vec<String> = Vec::new();
    for flag in options(tool) {
        let description = zsh_text(flag.description);
        let names = match flag.short {
            Some(c) => format!("'(-{c} {long})'{{-{c},{long}}}'", long = flag.long),
            None => format!("'{}", flag.long),
        };
        let value = match &flag.kind {
            FlagInfoKind::Switch => String::new(),
            FlagInfoKind::Option { arg_name } => {
                format!(
                    ":{}:{}",
                    zsh_text(arg_name),
                    zsh_action(tool, value_completer(tool, flag.long))
                )
            }
        };
        specs.push(format!("{names}[{description}]{value}'"));
    }
    specs.push("'--version[print the version]'".into());
    specs.push("'--help[print the usage]'".into());
    match tool.after_dashes {
        AfterDashes::Nothing => {}
        AfterDashes::Command => {
            specs.push("'(-)--[the command and its arguments]:*::command:_normal'".into())
        }
        AfterDashes::Sources => specs.push("'(-)--[the files to send]:*:source:_files'".into()),
    }
    if tool.positional != Completer::Nothing {
        let name = tool.info.positionals.first().map_or("argument", |p| p.name);
        specs.push(format!(
            "'*:{}:{}'",
            zsh_text(name),
            zsh_action(tool, tool.positional)
        ));
    }
    format!(
        "#compdef {name}\n# zsh completion for {name} ({GENERATED})\n\n\
         (( $+functions[_baleine_candidates] )) ||\n\
         _baleine_candidates() {{\n\
         \x20   local -a values\n\
         \x20   values=(${{(f)\"$(BALEINE_COMPLETE=$2 $1 2>/dev/null)\"}})\n\
         \x20   compadd -a values\n\
         }}\n\n\
         _arguments -s \\\n    {}\n",
        specs.join(" \\\n    "),
        name = tool.name,
    )
}

fn fish_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

pub fn fish_completion(tool: &Tool) -> String {
    let name = tool.name;
    let mut lines = vec![
        format!("# fish completion for {name} ({GENERATED})"),
        format!("complete -c {name} -f"),
    ];
    for flag in options(tool) {
        let mut line = format!("complete -c {name}");
        if let Some(c) = flag.short {
            line += &format!(" -s {c}");
        }
        line += &format!(" -l {}", flag.long.trim_start_matches("--"));
        if let FlagInfoKind::Option { .. } = flag.kind {
            line += &match value_completer(tool, flag.long) {
                Completer::Words(words) => format!(" -x -a '{}'", words.join(" ")),
                Completer::File => " -r -F".into(),
                Completer::Directory => " -x -a '(__fish_complete_directories)'".into(),
                Completer::Nothing => " -x".into(),
                dynamic => format!(
                    " -x -a '({})'",
                    candidates_command(name, dynamic).unwrap_or_default()
                ),
            };
        }
        line += &format!(" -d '{}'", fish_text(flag.description));
        lines.push(line);
    }
    lines.push(format!(
        "complete -c {name} -l version -d 'print the version'"
    ));
    if let Some(command) = candidates_command(name, tool.positional) {
        lines.push(format!(
            "complete -c {name} -n 'not __fish_seen_subcommand_from --' -a '({command})'"
        ));
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Braces read as `--help` shows them: argh's `{{` is one brace.
    #[test]
    fn man_pages_show_braces_as_help_does() {
        for tool in tools() {
            let page = man_page(&tool).replace("{{ and }} are braces", "");
            assert!(!page.contains("{{"), "{}: {page}", tool.name);
        }
        let list = tools()
            .into_iter()
            .find(|t| t.name == "baleine-list")
            .unwrap();
        assert!(man_page(&list).contains(r#"sorted: {"repository","tag","image"}"#));
    }

    #[test]
    fn the_readme_has_every_line_of_the_migration_table() {
        let readme = include_str!("../../../README.md");
        for (old, new) in MIGRATION {
            let row = format!("| `{old}` | {new} |");
            assert!(readme.contains(&row), "README lacks {row}");
        }
    }

    #[test]
    fn roff_escapes_what_roff_would_eat() {
        assert_eq!(roff("a-b \\n"), "a\\-b \\en");
        assert_eq!(roff(".start\n'quote"), "\\&.start\n\\&'quote");
    }

    #[test]
    fn every_tool_has_a_page_and_three_completions() {
        let files = generated_files();
        for tool in tools() {
            assert!(files
                .iter()
                .any(|(path, _)| path == &format!("man/{}.1", tool.name)));
        }
        assert_eq!(
            files
                .iter()
                .filter(|(p, _)| p.starts_with("completions/"))
                .count(),
            11 * 3 // ten tools and the front door, three shells each
        );
    }

    #[test]
    fn deploy_page_documents_options_examples_and_exit_codes() {
        let tool = tools().into_iter().next().unwrap();
        let page = man_page(&tool);
        assert!(page.contains("\\fB\\-i\\fR, \\fB\\-\\-image\\fR \\fIIMAGE\\fR"));
        assert!(page.contains(".B 130\nInterrupted"));
        assert!(page.contains(".EX\nrhubarbe nodes 1\\-5 | baleine\\-deploy"));
    }

    #[test]
    fn completions_offer_dynamic_nodes_and_images() {
        let tool = tools().into_iter().next().unwrap();
        assert!(bash_completion(&tool).contains("env BALEINE_COMPLETE=images baleine-deploy"));
        assert!(zsh_completion(&tool).contains("{_baleine_candidates baleine-deploy nodes}"));
        assert!(fish_completion(&tool).contains("-l pull -x -a 'always missing never'"));
    }
}
