//! `baleine-deploy`: not written yet; exits 2 rather than pretend to work.

fn main() -> std::process::ExitCode {
    baleine::exit::not_implemented("baleine-deploy")
}
