//! Ctrl-C, SIGTERM and SIGHUP become the run's stop flags (`domain::stop`).

use crate::domain::stop;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

extern "C" fn on_signal(signal: nix::libc::c_int) {
    stop::signal_received(signal);
}

/// Runs `work` (a wait on something outside: a terminal's answer, a pipe)
/// in a thread of its own and returns its result, or `None` as soon as
/// the run is interrupted: a blocking read restarts after our handler, so
/// only this way does Ctrl-C end the wait. The thread is left behind.
pub fn unless_interrupted<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, result) = crossbeam::channel::bounded(1);
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    loop {
        match result.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(value) => return Some(value),
            Err(_) if stop::interrupted() => return None,
            Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam::channel::RecvTimeoutError::Disconnected) => return None,
        }
    }
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
