//! baleine's shared core: everything the small `baleine-*` tools and `rdsh` have in common.
//!
//! A tool's `main` is a few lines over [`cli`]: parse arguments, prepare a
//! [`cli::Fleet`] (configuration, node list, ssh), build each node's remote
//! script with [`remote`], and let [`fanout`] and [`output`] turn every node
//! into exactly one JSON [`record`].

pub mod args;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deploy;
pub mod destroy;
pub mod docs;
pub mod exec;
pub mod exit;
pub mod fanout;
pub mod input;
pub mod list;
pub mod nodes;
pub mod output;
pub mod ps;
pub mod record;
pub mod reference;
pub mod registry;
pub mod remote;
pub mod save;
pub mod shell;
pub mod stop;
pub mod transport;

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
