//! `baleine-ps`: what runs where, one JSON record per node. Changes nothing.

use baleine::args::PsArgs;
use baleine::cli;
use baleine::UsageError;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    cli::main("baleine-ps", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let args = match cli::parse::<PsArgs>("baleine-ps", false) {
        Ok(parsed) => parsed.args,
        Err(code) => return Ok(code),
    };
    let options = args.fleet_options();
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(30))?;
    Ok(baleine::ps::run(fleet, args.all_containers))
}
