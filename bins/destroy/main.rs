//! `baleine-destroy`: remove the managed container on each node, and nothing else.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::destroy::DestroyArgs>()
}
