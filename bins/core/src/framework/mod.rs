//! What every tool shares: command line, node input, fan-out over a fleet, output, exit status and signals.

pub mod args;
pub mod cli;
pub mod complete;
pub mod confirm;
pub mod exit;
pub mod fanout;
pub mod fleet;
pub mod help;
pub mod input;
pub mod output;
pub mod signals;
pub mod table;

use std::fmt;

/// A problem found before any node work: bad arguments, configuration or
/// node list. Reported on stderr; the tool exits 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
