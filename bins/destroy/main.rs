//! `baleine-destroy`: remove the managed container on each node, and nothing else.

use baleine::args::DestroyArgs;
use baleine::cli;
use baleine::UsageError;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    cli::main("baleine-destroy", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let args = match cli::parse::<DestroyArgs>("baleine-destroy", false) {
        Ok(parsed) => parsed.args,
        Err(code) => return Ok(code),
    };
    let options = args.fleet_options();
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(120))?;
    if !args.yes && !args.dry_run {
        return baleine::destroy::run_confirmed(fleet, args.stop_timeout);
    }
    Ok(baleine::destroy::run(fleet, args.stop_timeout))
}
