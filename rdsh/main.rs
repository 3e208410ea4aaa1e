//! `rdsh`: the `container` user's login shell, which lands every ssh session in the node's managed container.

fn main() -> std::process::ExitCode {
    baleine::jobs::rdsh::main()
}
