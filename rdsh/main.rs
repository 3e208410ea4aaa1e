//! `rdsh`: the `container` user's login shell, which lands every ssh session in the node's managed container.

use baleine::args::RdshArgs;
use baleine::config::{self, Source};
use baleine::exit;
use baleine::shell::{self, Invocation, Plan, Session};
use std::io::{self, Write};
use std::process::ExitCode;

/// The container is missing or stopped, Docker is unreachable, docker cannot
/// be run, or the node's configuration is broken.
const CANNOT_START: u8 = 1;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.len() == 1 && args[0] == "--help" {
        // The same text as rdsh(1): both come from RdshArgs.
        if let Err(help) = <RdshArgs as argh::FromArgs>::from_args(&["rdsh"], &["--help"]) {
            let _ = write!(io::stdout(), "{}", help.output);
        }
        return ExitCode::SUCCESS;
    }
    let mode = match shell::parse_args(&args) {
        Ok(Invocation::Run(mode)) => mode,
        Ok(Invocation::Version) => {
            let _ = writeln!(io::stdout(), "rdsh {}", baleine::cli::VERSION);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = writeln!(io::stderr(), "rdsh: {error}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // The system file only, and no environment: neither BALEINE_* variables
    // nor the user's own files may point rdsh at another container or daemon.
    let plan = match config::load_from(&[Source::optional(config::SYSTEM_CONFIG)], &|_| None) {
        Ok(config) => Session::here(&config).plan(&mode, shell::DOCKER_TIMEOUT),
        Err(error) => Plan::Fail(error.to_string()),
    };
    match plan {
        Plan::Exec(argv) => {
            let error = shell::exec(&argv);
            let program = argv.first().map(|word| word.to_string_lossy());
            fail(&format!(
                "cannot run {}: {error}",
                program.unwrap_or_default()
            ))
        }
        Plan::Fail(problem) => {
            if mode.sftp_server().is_some() {
                // sshd drops a subsystem's stderr: say it in the sftp protocol.
                let answer = format!("rdsh: {problem}");
                let _ = shell::refuse_sftp(io::stdin().lock(), io::stdout().lock(), &answer);
            }
            fail(&problem)
        }
    }
}

/// Says why the session cannot start (never panicking, unlike eprintln!,
/// when stderr is gone) and exits 1.
fn fail(problem: &str) -> ExitCode {
    let _ = writeln!(io::stderr(), "rdsh: {problem}");
    ExitCode::from(CANNOT_START)
}
