//! `baleine-ps`: what runs where, one JSON record per node. Changes nothing.

use argh::FromArgs;
use baleine::cli::{self, FleetOptions};
use baleine::UsageError;
use std::process::ExitCode;
use std::time::Duration;

/// Show the managed container of each node: state (running, exited with its
/// code, restarting, absent...), image, digest, container id, start time,
/// uptime, and the node's engine version. On a terminal, a last summary
/// counts the nodes per digest, so a mixed fleet is obvious. Read-only.
#[derive(FromArgs)]
#[argh(
    example = "baleine-ps -a",
    example = "baleine-ps 1-10 | jq -r 'select(.state != \"running\") | .node'",
    note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
            else from stdin (node names, or JSON records with a \"node\" field), else from $NODES.",
    error_code(1, "some node could not be asked (its record says where and why)"),
    error_code(2, "usage, configuration or node-list error; nothing was done"),
    error_code(130, "interrupted; every node still got a record")
)]
struct Args {
    /// also list the node's other containers (name, image, state)
    #[argh(switch)]
    all_containers: bool,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    all: bool,
    /// how many nodes to ask at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    parallel: Option<usize>,
    /// give up on a node after this many seconds (default: 30)
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
    cli::main("baleine-ps", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let args = match cli::parse::<Args>("baleine-ps", false) {
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
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(30))?;
    Ok(baleine::ps::run(fleet, args.all_containers))
}
