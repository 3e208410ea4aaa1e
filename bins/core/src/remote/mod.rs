//! How we reach the outside world: remote shell scripts, the ssh transport, the registry client.

pub mod credentials;
pub mod protocol;
pub mod quote;
pub mod registry;
pub mod script;
pub mod ssh;
pub mod tarball;
