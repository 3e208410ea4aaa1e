//! `baleine-logs`: the managed container's logs from every node.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::logs::LogsArgs>()
}
