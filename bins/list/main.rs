//! `baleine-list`: list the images in the registry, one JSON line per tag.

use argh::FromArgs;
use baleine::cli;
use baleine::UsageError;
use std::process::ExitCode;

/// List every image tag in the registry at REGISTRY_PROTOCOL + REGISTRY_URL,
/// one JSON line per tag, sorted: {"repository","tag","image"}, where
/// "image" is the reference to give baleine-deploy -i.
#[derive(FromArgs)]
#[argh(
    example = "baleine-list",
    example = "baleine-list myexp --details | jq -r 'select(.labels[\"org.r2lab.baleine.source-node\"]) | .image'",
    note = "Credentials: REGISTRY_USER and REGISTRY_PASSWORD, else those of docker login \
            (~/.docker/config.json). Basic and Bearer-token registries are supported.",
    error_code(
        1,
        "the registry could not be read completely (stderr names the URL and why)"
    ),
    error_code(2, "usage or configuration error"),
    error_code(130, "interrupted")
)]
struct Args {
    /// also show digest, size (compressed, config and layers), created,
    /// architecture and labels of each image
    #[argh(switch, short = 'd')]
    details: bool,
    /// how many repositories to read at once (default: 8)
    #[argh(option, short = 'j', default = "8")]
    parallel: usize,
    /// repositories to list (default: the whole catalog)
    #[argh(positional)]
    repositories: Vec<String>,
}

fn main() -> ExitCode {
    cli::main("baleine-list", run)
}

fn run() -> Result<ExitCode, UsageError> {
    let args = match cli::parse::<Args>("baleine-list", false) {
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
