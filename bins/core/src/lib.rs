//! baleine's shared core: everything the small `baleine-*` tools and `rdsh` have in common.
//!
//! The layers, from the bottom up (a layer uses only those below it):
//! - [`domain`]: what the tools talk about: node names and specs, image
//!   references, the configuration, the JSON record and its stages.
//! - [`remote`]: how we reach the outside: the remote shell script builder,
//!   the ssh transport (a node name becomes an ssh argv in
//!   `remote::ssh::argv`) and the registry client.
//! - [`framework`]: what every tool shares: argument parsing and exit codes,
//!   the node input, the [`framework::fleet::Fleet`] that runs a
//!   [`framework::fleet::Job`] on every node, the fan-out, and the one writer
//!   of stdout (`framework::output`, where every record is written).
//! - [`jobs`]: one module per tool: its arguments, its remote script and how
//!   the script's result becomes the node's record. No job uses another.
//! - [`docs`]: man pages and completions, generated from the jobs' arguments.
//! - [`front`]: `baleine`, the front door that runs the tools and reads
//!   baleine 0.8's command lines.

pub mod docs;
pub mod domain;
pub mod framework;
pub mod front;
pub mod jobs;
pub mod remote;

pub use framework::UsageError;
