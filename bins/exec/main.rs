//! `baleine-exec`: run a command inside the managed container of every node.

use argh::FromArgs;
use baleine::cli::{self, FleetOptions};
use baleine::exec::ExecPlan;
use baleine::UsageError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Run COMMAND inside the managed container of every node in parallel
/// (docker exec, every word quoted) and print one JSON record per node:
/// exit_code, stdout and stderr (capped, with a truncated flag), elapsed_ms.
/// "ok" is true when the command exited 0. A node's timeout kills the
/// command inside the container, not just the connection.
#[derive(FromArgs)]
#[argh(
    example = "baleine-exec 1-5 -- uname -r",
    example = "baleine-exec -a --stdin setup.sh -- sh -s",
    example = "baleine-exec -a --output-dir logs -- journalctl -b",
    note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
            else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
            Words after -- are the command.",
    error_code(1, "the command failed on some node, or could not run there"),
    error_code(2, "usage, configuration or node-list error; nothing was done"),
    error_code(130, "interrupted; every node still got a record")
)]
struct Args {
    /// feed this file to the command's stdin on every node
    #[argh(option)]
    stdin: Option<PathBuf>,
    /// bytes of stdout and of stderr kept in each record (default: 65536)
    #[argh(option, default = "64 * 1024")]
    max_output: usize,
    /// write each node's full output to DIR/<node>.out and DIR/<node>.err instead
    #[argh(option)]
    output_dir: Option<PathBuf>,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    all: bool,
    /// how many nodes at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    parallel: Option<usize>,
    /// kill the command after this many seconds (default: 300)
    #[argh(option)]
    timeout: Option<u64>,
    /// print each node's ssh command and remote script instead of running them
    #[argh(switch)]
    dry_run: bool,
    /// nodes: 3, fit03, 1-5, 4-16-2, ~7 (default: stdin, then $NODES)
    #[argh(positional)]
    nodes: Vec<String>,
}

fn main() -> ExitCode {
    cli::main("baleine-exec", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let parsed = match cli::parse::<Args>("baleine-exec", true) {
        Ok(parsed) => parsed,
        Err(code) => return Ok(code),
    };
    let args = parsed.args;
    let plan = ExecPlan::new(
        parsed.trailing,
        args.stdin,
        args.max_output,
        args.output_dir,
    )?;
    let options = FleetOptions {
        nodes: args.nodes,
        all: args.all,
        parallel: args.parallel,
        timeout: args.timeout,
        dry_run: args.dry_run,
    };
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(300))?;
    Ok(baleine::exec::run(fleet, plan))
}
