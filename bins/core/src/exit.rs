//! Exit statuses shared by every baleine tool, so scripts can rely on them.

/// Every node succeeded.
pub const OK: u8 = 0;
/// At least one node failed (its record says why).
pub const SOME_NODE_FAILED: u8 = 1;
/// Usage, configuration or input error, detected before any node work.
pub const USAGE: u8 = 2;
/// Interrupted by SIGINT/SIGTERM.
pub const INTERRUPTED: u8 = 130;
