//! `baleine-list`: list the images in the registry, one JSON line per tag.

use baleine::args::ListArgs;
use baleine::cli;
use baleine::UsageError;
use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main("baleine-list", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let args = match cli::parse::<ListArgs>("baleine-list", false) {
        Ok(parsed) => parsed.args,
        Err(code) => return Ok(code),
    };
    for repository in &args.repositories {
        baleine::reference::validate_repository_name(repository)
            .map_err(|e| UsageError(e.to_string()))?;
    }
    let config = baleine::config::load().map_err(|e| UsageError(e.to_string()))?;
    Ok(baleine::list::run(
        &config,
        &args.repositories,
        args.details,
        args.parallel,
    ))
}
