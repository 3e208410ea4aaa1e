//! Why a run stops early: Ctrl-C or SIGTERM, or nobody reading our output any more.
//!
//! Signal handlers only set a flag; workers, the watchdog and the writer poll
//! it, so every node still gets its record (`interrupted`) before we exit 130.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static ABANDONED: AtomicBool = AtomicBool::new(false);
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    // The second one abandons: stop waiting for the nodes' cleanup.
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        ABANDONED.store(true, Ordering::SeqCst);
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

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A second Ctrl-C: give up on stopping the nodes' work, end at once
/// (every node still gets its record).
pub fn abandoned() -> bool {
    ABANDONED.load(Ordering::SeqCst)
}

/// Our reader went away (`| head -1`): stop starting work, end quietly.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::SeqCst)
}

pub fn close_stdout() {
    STDOUT_CLOSED.store(true, Ordering::SeqCst);
}

/// True once no new node work should start.
pub fn stopping() -> bool {
    interrupted() || stdout_closed()
}
