//! `baleine-deploy`: run an image as the managed container on each node.

use baleine::args::DeployArgs;
use baleine::cli;
use baleine::deploy::{self, DeployPlan};
use baleine::UsageError;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    cli::main("baleine-deploy", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let parsed = match cli::parse::<DeployArgs>("baleine-deploy", true) {
        Ok(parsed) => parsed,
        Err(code) => return Ok(code),
    };
    let args = parsed.args;
    let mut plan = DeployPlan::new(&args.image, args.options.as_deref(), parsed.trailing)?;
    plan.pull = args.pull;
    plan.stop_timeout = args.stop_timeout;
    plan.pin = !args.no_pin;
    plan.bootstrap = args.bootstrap.clone();
    let options = args.fleet_options();
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(600))?;
    Ok(deploy::run(fleet, plan))
}
