//! Exit statuses shared by every baleine tool, so scripts can rely on them.

use crate::domain::stop;
use crate::framework::output::Tally;
use std::process::ExitCode;

/// Every node succeeded.
pub const OK: u8 = 0;
/// At least one node failed (its record says why).
pub const SOME_NODE_FAILED: u8 = 1;
/// Usage, configuration or input error, detected before any node work.
pub const USAGE: u8 = 2;
/// Interrupted by SIGINT/SIGTERM.
pub const INTERRUPTED: u8 = 130;

/// 130 when interrupted, 1 when a node failed, else 0. When our reader went
/// away we end quietly: nodes cut short by that do not count as failures.
pub fn status(tally: &Tally) -> ExitCode {
    let code = if stop::interrupted() {
        INTERRUPTED
    } else if tally.failed > 0 || (tally.interrupted > 0 && !stop::stdout_closed()) {
        SOME_NODE_FAILED
    } else {
        OK
    };
    ExitCode::from(code)
}
