//! `baleine-list`: list the images in the registry, one JSON line per tag.

fn main() -> std::process::ExitCode {
    baleine::framework::cli::main::<baleine::jobs::list::ListArgs>()
}
