//! `baleine-save`: commit the managed container of each node and push it to the repo registry.

use baleine::args::SaveArgs;
use baleine::cli;
use baleine::save::{self, SavePlan};
use baleine::UsageError;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    cli::main("baleine-save", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let args = match cli::parse::<SaveArgs>("baleine-save", false) {
        Ok(parsed) => parsed.args,
        Err(code) => return Ok(code),
    };
    let plan = SavePlan::new(&args.name, args.push_only)?;
    let options = args.fleet_options();
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(900))?;
    save::run(fleet, plan)
}
