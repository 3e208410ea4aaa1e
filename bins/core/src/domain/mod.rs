//! What the tools talk about, with no I/O to nodes or registries: node specs, image references, configuration, records.

pub mod clock;
pub mod config;
pub mod labels;
pub mod nodes;
pub mod record;
pub mod reference;
pub mod stop;
