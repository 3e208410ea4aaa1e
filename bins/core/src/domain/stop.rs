//! Whether the run is stopping: the process-wide flags (Ctrl-C, a second Ctrl-C, our reader gone) that every layer reads.
//!
//! They sit in the domain, the bottom layer, because the transport's
//! watchdog and the registry client must see them as much as the fan-out
//! and the writer. Only `framework::signals` (Ctrl-C, SIGTERM, SIGHUP) and
//! `framework::output` (a closed stdout) set them; workers, the watchdog
//! and the writer poll them, so every node still gets its record
//! (`interrupted`) before we exit 130.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The first signal that stopped the run (its exit status is 128 + it).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static ABANDONED: AtomicBool = AtomicBool::new(false);
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// A Ctrl-C, SIGTERM or SIGHUP arrived; the second one abandons (stop
/// waiting for the nodes' cleanup). Async-signal-safe: atomics only.
pub fn signal_received(signal: i32) {
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        ABANDONED.store(true, Ordering::SeqCst);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The signal that interrupted the run, if one did (SIGINT, SIGTERM, SIGHUP).
pub fn signal() -> Option<i32> {
    Some(SIGNAL.load(Ordering::SeqCst)).filter(|s| *s != 0)
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

/// Why the input was refused mid-run (a stdin request record that does
/// not parse): the run stops as on Ctrl-C, and exits 2.
static REFUSED: OnceLock<String> = OnceLock::new();

/// Refuses the run's input: no new node starts and the tool exits 2. As
/// when our reader goes away, the nodes at work finish what they started
/// (their requests were valid; a deploy cut between removing the old
/// container and running the new one would leave the node with neither).
/// The first reason stays.
pub fn refuse_input(why: String) {
    let _ = REFUSED.set(why);
}

/// Why the input was refused, if it was.
pub fn input_refused() -> Option<&'static str> {
    REFUSED.get().map(String::as_str)
}

/// True once no new node work should start.
pub fn stopping() -> bool {
    interrupted() || stdout_closed() || input_refused().is_some()
}
