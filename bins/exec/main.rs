//! `baleine-exec`: run a command inside the managed container of every node.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::exec::ExecArgs>()
}
