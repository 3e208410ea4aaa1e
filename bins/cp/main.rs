//! `baleine-cp`: files into or out of the managed container of every node.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::cp::CpArgs>()
}
