//! baleine's shared core: everything the small `baleine-*` tools and `rdsh` have in common.

pub mod config;
pub mod exit;
pub mod nodes;
pub mod reference;
