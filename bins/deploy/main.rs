//! `baleine-deploy`: run an image as the managed container on each node.

use argh::FromArgs;
use baleine::cli::{self, FleetOptions};
use baleine::deploy::{self, DeployPlan, PullPolicy};
use baleine::UsageError;
use std::process::ExitCode;
use std::time::Duration;

/// Run IMAGE as the managed container on each node: remove the previous one,
/// pull, run, and print one JSON record per node. The first node resolves the
/// image digest; the others run that exact digest.
#[derive(FromArgs)]
#[argh(
    example = "rhubarbe nodes 1-5 | baleine-deploy -i busybox -- sleep infinity",
    example = "baleine-deploy -i faraday.repo/myexp:v2 --options \"-e 'MSG=hello world'\" 1-10 ~7",
    note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
            else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
            Words after -- are the container's command.",
    error_code(1, "some node failed (its record says where and why)"),
    error_code(2, "usage, configuration or node-list error; nothing was done"),
    error_code(130, "interrupted; every node still got a record")
)]
struct Args {
    /// image to run (Docker reference: busybox, faraday.repo/name:tag, name@sha256:...)
    #[argh(option, short = 'i')]
    image: String,
    /// extra docker run options, split like a shell would ("-e 'MSG=hello world'")
    #[argh(option)]
    options: Option<String>,
    /// when to pull: always (default), missing or never
    #[argh(option, default = "PullPolicy::Always", from_str_fn(pull_policy))]
    pull: PullPolicy,
    /// reload the nodes with this rhubarbe image first ("default" for DEFAULT_BOOTSTRAP_IMAGE)
    #[argh(option)]
    bootstrap: Option<String>,
    /// stop the old container gracefully, waiting up to this many seconds (default: remove at once)
    #[argh(option)]
    stop_timeout: Option<u32>,
    /// do not pin the other nodes to the digest the first node resolved
    #[argh(switch)]
    no_pin: bool,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    all: bool,
    /// how many nodes to work on at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    parallel: Option<usize>,
    /// give up on a node after this many seconds (default: 600)
    #[argh(option)]
    timeout: Option<u64>,
    /// print each node's ssh command and remote script instead of running them
    #[argh(switch)]
    dry_run: bool,
    /// nodes: 3, fit03, 1-5, 4-16-2, ~7 (default: stdin, then $NODES)
    #[argh(positional)]
    nodes: Vec<String>,
}

fn pull_policy(value: &str) -> Result<PullPolicy, String> {
    value.parse()
}

fn main() -> ExitCode {
    cli::main("baleine-deploy", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let parsed = match cli::parse::<Args>("baleine-deploy", true) {
        Ok(parsed) => parsed,
        Err(code) => return Ok(code),
    };
    let args = parsed.args;
    let mut plan = DeployPlan::new(&args.image, args.options.as_deref(), parsed.trailing)?;
    plan.pull = args.pull;
    plan.stop_timeout = args.stop_timeout;
    plan.pin = !args.no_pin;
    plan.bootstrap = args.bootstrap;
    let options = FleetOptions {
        nodes: args.nodes,
        all: args.all,
        parallel: args.parallel,
        timeout: args.timeout,
        dry_run: args.dry_run,
    };
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(600))?;
    Ok(deploy::run(fleet, plan))
}
