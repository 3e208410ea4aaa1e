//! `baleine-exec`: run a command inside the managed container of every node.

use baleine::args::ExecArgs;
use baleine::cli;
use baleine::exec::ExecPlan;
use baleine::UsageError;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    cli::main("baleine-exec", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let parsed = match cli::parse::<ExecArgs>("baleine-exec", true) {
        Ok(parsed) => parsed,
        Err(code) => return Ok(code),
    };
    let args = parsed.args;
    let plan = ExecPlan::new(
        parsed.trailing,
        args.stdin.clone(),
        args.max_output,
        args.output_dir.clone(),
    )?;
    let options = args.fleet_options();
    let fleet = cli::Fleet::prepare(options, Duration::from_secs(300))?;
    Ok(baleine::exec::run(fleet, plan))
}
