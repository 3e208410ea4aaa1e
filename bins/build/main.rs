//! `baleine-build`: build an image and push its tags to the repo registry.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::build::BuildArgs>()
}
