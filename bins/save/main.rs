//! `baleine-save`: commit the managed container of each node and push it to the repo registry.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::save::SaveArgs>()
}
