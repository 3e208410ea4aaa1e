//! `baleine-rmi`: delete tags from the repo registry.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::rmi::RmiArgs>()
}
