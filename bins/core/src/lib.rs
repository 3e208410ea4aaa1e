//! baleine's shared core: everything the small `baleine-*` tools and `rdsh` have in common.

pub mod exit;
