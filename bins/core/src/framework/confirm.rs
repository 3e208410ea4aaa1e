//! Asking the person at the terminal before something that cannot be undone (destroy, rmi).

use crate::framework::UsageError;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};

/// Asks `question` on the terminal (`/dev/tty`: stdin may be carrying the
/// input) and says whether the answer was yes. Without a terminal, a usage
/// error telling to pass `-y` (`what` is the tool's verb). Interrupted
/// while waiting for the answer: false (the run's stop flag says why).
pub fn ask(question: &str, what: &str) -> Result<bool, UsageError> {
    let no_terminal = || {
        UsageError(format!(
            "no terminal to confirm on: pass -y to {what} without asking"
        ))
    };
    let mut tty = File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| no_terminal())?;
    write!(tty, "{question} [y/N] ").map_err(|_| no_terminal())?;
    // Ctrl-C at the question is no answer: false, and the caller sees
    // the run interrupted.
    let answer = crate::framework::signals::unless_interrupted(move || {
        let mut answer = String::new();
        BufReader::new(tty).read_line(&mut answer).map(|_| answer)
    });
    match answer {
        None => {
            eprintln!();
            Ok(false)
        }
        Some(answer) => {
            let answer = answer.map_err(|_| no_terminal())?;
            Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
        }
    }
}
