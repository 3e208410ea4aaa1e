//! One module per tool: its arguments, its remote script, and how a node's result becomes its record.
//!
//! A job module uses the layers below it (domain, remote, framework) and
//! never another job module.

pub mod build;
pub mod cp;
pub mod deploy;
pub mod destroy;
pub mod exec;
pub mod list;
pub mod logs;
pub mod ps;
pub mod rdsh;
pub mod rmi;
pub mod save;
