//! Ctrl-C, SIGTERM and SIGHUP become the run's stop flags (`domain::stop`).

use crate::domain::stop;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

extern "C" fn on_signal(signal: nix::libc::c_int) {
    stop::signal_received(signal);
}

/// Routes SIGINT, SIGTERM and SIGHUP to the interrupted flag.
pub fn install_handlers() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        match unsafe { sigaction(signal, &action) } {
            // Ignored when we started (nohup, a background job without job
            // control): a hangup or Ctrl-C there is not meant for us.
            Ok(old) if old.handler() == SigHandler::SigIgn && signal != Signal::SIGTERM => {
                // SAFETY: restoring SIG_IGN installs no handler.
                let _ = unsafe { sigaction(signal, &old) };
            }
            Ok(_) => {}
            Err(e) => log::warn!("cannot handle {signal}: {e}"),
        }
    }
}
