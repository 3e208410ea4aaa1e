//! What the tools talk about, with no I/O to nodes or registries: node specs, image references, configuration, records.

pub mod clock;
pub mod config;
pub mod dockerignore;
pub mod labels;
pub mod nodes;
pub mod own_dir;
pub mod record;
pub mod reference;
pub mod stop;
