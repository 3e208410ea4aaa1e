//! `baleine`: the front door, `baleine TOOL ARGS…` runs `baleine-TOOL` (0.8 command lines accepted).

fn main() -> std::process::ExitCode {
    baleine::front::main()
}
