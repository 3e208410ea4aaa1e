//! `baleine-deploy`: run an image as the managed container on each node.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::deploy::DeployArgs>()
}
