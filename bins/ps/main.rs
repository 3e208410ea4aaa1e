//! `baleine-ps`: what runs where, one JSON record per node. Changes nothing.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::ps::PsArgs>()
}
