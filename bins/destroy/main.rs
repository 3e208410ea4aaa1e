//! `baleine-destroy`: remove the managed container on each node, and nothing else.

use argh::FromArgs;
use baleine::cli::{self, FleetOptions};
use baleine::UsageError;
use std::process::ExitCode;
use std::time::Duration;

/// Remove the container baleine manages on each node (never other containers
/// or images) and print one JSON record per node, with "removed": false when
/// there was none. Asks for confirmation on the terminal unless -y is given.
#[derive(FromArgs)]
#[argh(
    example = "baleine-destroy -y 1-5",
    example = "baleine-deploy -i busybox 1-5 | jq -c 'select(.ok)' | baleine-destroy -y",
    note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
            else from stdin (node names, or JSON records with a \"node\" field), else from $NODES.",
    error_code(1, "some node failed (its record says where and why)"),
    error_code(
        2,
        "usage, configuration or node-list error, or no terminal to confirm on; nothing was done"
    ),
    error_code(130, "interrupted; every node still got a record")
)]
struct Args {
    /// do not ask for confirmation
    #[argh(switch, short = 'y')]
    yes: bool,
    /// stop the container gracefully, waiting up to this many seconds (default: remove at once)
    #[argh(option)]
    stop_timeout: Option<u32>,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    all: bool,
    /// how many nodes to work on at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    parallel: Option<usize>,
    /// give up on a node after this many seconds (default: 120)
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
    cli::main("baleine-destroy", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let args = match cli::parse::<Args>("baleine-destroy", false) {
        Ok(parsed) => parsed.args,
        Err(code) => return Ok(code),
    };
    let options = FleetOptions {
        nodes: args.nodes,
        all: args.all,
        parallel: args.parallel,
        timeout: args.timeout,
        dry_run: args.dry_run,
    };
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(120))?;
    if !args.yes && !args.dry_run {
        return baleine::destroy::run_confirmed(fleet, args.stop_timeout);
    }
    Ok(baleine::destroy::run(fleet, args.stop_timeout))
}
