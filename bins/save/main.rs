//! `baleine-save`: commit the managed container of each node and push it to the repo registry.

use argh::FromArgs;
use baleine::cli::{self, FleetOptions};
use baleine::save::{self, SavePlan};
use baleine::UsageError;
use std::process::ExitCode;
use std::time::Duration;

/// Save the managed container of each node as an image in the repo registry
/// (SAVE_URL): commit it with labels naming its source, push it, and check
/// that the registry serves it. With several nodes each image is tagged
/// TAG-<node>. Prints one JSON record per node; "image" is ready for
/// baleine-deploy -i.
#[derive(FromArgs)]
#[argh(
    example = "baleine-save -n myexp:v1 fit03",
    example = "baleine-save -n myexp:v1 1-3      # myexp:v1-fit01, myexp:v1-fit02, myexp:v1-fit03",
    note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
            else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
            A failed push leaves the committed image on the node (\"local_image\"): retry with --push-only.",
    error_code(1, "some node failed (its record says where and why)"),
    error_code(2, "usage, configuration or node-list error; nothing was done"),
    error_code(130, "interrupted; every node still got a record")
)]
struct Args {
    /// repository and tag to save as, NAME[:TAG] (tag defaults to latest)
    #[argh(option, short = 'n')]
    name: String,
    /// push the image a previous save committed but could not push
    #[argh(switch)]
    push_only: bool,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    all: bool,
    /// how many nodes to work on at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    parallel: Option<usize>,
    /// give up on a node after this many seconds (default: 900)
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
    cli::main("baleine-save", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let args = match cli::parse::<Args>("baleine-save", false) {
        Ok(parsed) => parsed.args,
        Err(code) => return Ok(code),
    };
    let plan = SavePlan::new(&args.name, args.push_only)?;
    let options = FleetOptions {
        nodes: args.nodes,
        all: args.all,
        parallel: args.parallel,
        timeout: args.timeout,
        dry_run: args.dry_run,
    };
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(900))?;
    save::run(fleet, plan)
}
