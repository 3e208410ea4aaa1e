//! Exit statuses shared by every baleine tool, so scripts can rely on them.

use crate::domain::stop;
use crate::framework::output::Tally;
use std::process::ExitCode;

/// Every node succeeded.
pub const OK: u8 = 0;
/// At least one node failed (its record says why).
pub const SOME_NODE_FAILED: u8 = 1;
/// Usage, configuration or input error, detected before any node work.
pub const USAGE: u8 = 2;
/// Interrupted by SIGINT (Ctrl-C); by SIGTERM it is 143, by SIGHUP 129:
/// 128 plus the signal, as shells report a command a signal ended.
pub const INTERRUPTED: u8 = 130;

/// The exit status of a run a signal interrupted: 128 + the signal.
pub fn interrupted_status() -> u8 {
    stop::signal()
        .and_then(|signal| u8::try_from(128 + signal).ok())
        .unwrap_or(INTERRUPTED)
}

/// 128 + the signal when interrupted (130 for Ctrl-C), 2 when the input was refused mid-run, 1 when a
/// node failed, else 0. When our reader went away we end quietly: nodes cut
/// short by that do not count as failures.
pub fn status(tally: &Tally) -> ExitCode {
    let code = if stop::interrupted() {
        interrupted_status()
    } else if stop::input_refused().is_some() {
        USAGE
    } else if tally.failed > 0 || (tally.interrupted > 0 && !stop::stdout_closed()) {
        SOME_NODE_FAILED
    } else {
        OK
    };
    ExitCode::from(code)
}

/// The status the records alone make: 1 when one failed, else 0 (a run
/// whose interrupt was its normal end, `logs --follow`).
pub fn status_of_records(tally: &Tally) -> ExitCode {
    ExitCode::from(match tally.failed + tally.interrupted {
        0 => OK,
        _ => SOME_NODE_FAILED,
    })
}

/// Runs `work` (a tool's whole run) on a thread of its own and returns its
/// status, or 128 + the signal as soon as the run is interrupted: a request blocked on a
/// slow server (a registry answering each page just before its timeout)
/// must not hold Ctrl-C for that long. Whatever the thread was writing is
/// abandoned with the process.
pub fn unless_interrupted(work: impl FnOnce() -> ExitCode + Send + 'static) -> ExitCode {
    let (done_tx, done) = crossbeam::channel::bounded(1);
    std::thread::spawn(move || {
        let _ = done_tx.send(work());
    });
    loop {
        match done.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(code) => return code,
            Err(crossbeam::channel::RecvTimeoutError::Timeout) if stop::interrupted() => {
                return ExitCode::from(interrupted_status())
            }
            Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
            // The work panicked: its message is on stderr.
            Err(crossbeam::channel::RecvTimeoutError::Disconnected) => {
                return ExitCode::from(SOME_NODE_FAILED)
            }
        }
    }
}
