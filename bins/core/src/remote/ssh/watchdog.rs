//! One thread that cuts ssh sessions past their deadline, or all of them once the run is stopping.

use crate::domain::stop;
use crate::remote::protocol::Cut;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One thread that kills sessions past their deadline, or all of them when
/// the run is interrupted, so workers can simply block on their child.
pub(super) struct Watchdog {
    watched: Mutex<HashMap<u32, Watched>>,
}

struct Watched {
    /// When the SIGTERM was sent, for the SIGKILL that follows if needed.
    cut_at: Option<Instant>,
    deadline: Instant,
    interruptible: bool,
    /// Cut too when our reader goes away (an endless stream of output).
    with_reader: bool,
    cut: Option<Cut>,
}

/// How long a cut session may outlive its SIGTERM.
const KILL_AFTER: Duration = Duration::from_secs(3);

pub(super) fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(50));
            watchdog().tick();
        });
        Watchdog {
            watched: Mutex::new(HashMap::new()),
        }
    })
}

impl Watchdog {
    /// Watches `pid` until `deadline`, and until the run stops if
    /// `interruptible`, and until our reader goes away if `with_reader`.
    pub(super) fn watch(
        &self,
        pid: u32,
        deadline: Instant,
        interruptible: bool,
        with_reader: bool,
    ) {
        self.lock().insert(
            pid,
            Watched {
                cut_at: None,
                deadline,
                interruptible,
                with_reader,
                cut: None,
            },
        );
    }

    pub(super) fn unwatch(&self, pid: u32) -> Option<Cut> {
        self.lock().remove(&pid).and_then(|w| w.cut)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Watched>> {
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn tick(&self) {
        let now = Instant::now();
        // An interrupt cuts the sessions; a reader that went away (`| head
        // -1`) does not: the nodes at work finish what they started (a
        // deploy cut between removing the old container and running the
        // new one would leave the node with neither), only new nodes wait.
        let stopping = stop::interrupted();
        for (pid, watched) in self.lock().iter_mut() {
            if let Some(since) = watched.cut_at {
                // Still there after a SIGTERM (a wrapper that ignores it):
                // no node may wait for ever for its record.
                if now.duration_since(since) >= KILL_AFTER {
                    let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
                }
                continue;
            }
            let reader_gone = watched.with_reader && stop::stdout_closed();
            let cut = if (stopping && (watched.interruptible || stop::abandoned())) || reader_gone {
                Cut::Interrupted
            } else if now >= watched.deadline {
                Cut::Timeout
            } else {
                continue;
            };
            watched.cut = Some(cut);
            watched.cut_at = Some(now);
            // Still watched means not reaped yet (see Ssh::run): the pid is ours.
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
        }
    }
}
