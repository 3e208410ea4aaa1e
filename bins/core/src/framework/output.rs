//! The one writer of stdout: a JSON line per record, flushed at once, plus progress and summary on a terminal.

use crate::domain::record::Record;
use crate::framework::stop;
use crossbeam::channel::{unbounded, Sender};
use std::io::{self, IsTerminal, Write};
use std::thread::JoinHandle;

/// What was written, for the exit status and the final summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub ok: usize,
    pub failed: usize,
    pub interrupted: usize,
}

impl Tally {
    fn count(&mut self, record: &Record) {
        if record.is_ok() {
            self.ok += 1;
        } else if record.stage() == Some("interrupted") {
            self.interrupted += 1;
        } else {
            self.failed += 1;
        }
    }

    pub fn total(&self) -> usize {
        self.ok + self.failed + self.interrupted
    }
}

/// Handle on the writer thread: send records through `records`, then `finish`.
pub struct Writer {
    pub records: Sender<Record>,
    handle: JoinHandle<Tally>,
}

impl Writer {
    /// Starts the writer for a tool doing `action` (shown in progress lines).
    pub fn start(action: &'static str) -> Writer {
        let (records, received) = unbounded::<Record>();
        let handle = std::thread::spawn(move || {
            let progress = io::stderr().is_terminal();
            let mut stdout = io::stdout().lock();
            let mut tally = Tally::default();
            let mut failures: Vec<String> = Vec::new();
            for record in received {
                tally.count(&record);
                if !record.is_ok() && record.stage() != Some("interrupted") {
                    failures.push(printable(&format!(
                        "{} ({})",
                        record.node().unwrap_or("?"),
                        record.stage().unwrap_or("?")
                    )));
                }
                write_line(&mut stdout, &record.to_json_line());
                if progress {
                    eprint!(
                        "\r\x1b[K{action}: {} done, {} failed",
                        tally.total(),
                        tally.failed
                    );
                }
            }
            if progress {
                eprint!("\r\x1b[K");
                summarize(action, &tally, &failures);
            }
            tally
        });
        Writer { records, handle }
    }

    /// Waits until every record sent so far is written.
    pub fn finish(self) -> Tally {
        drop(self.records);
        self.handle.join().unwrap_or_default()
    }
}

/// `text` safe to print on a terminal: control characters (escape
/// sequences a node may have sent, newlines) are shown escaped, not obeyed.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

/// Writes one line to stdout and flushes it, unless our reader is gone; the
/// first failed write (`| head -1`) marks stdout closed. False once closed.
pub fn write_line(stdout: &mut impl Write, line: &str) -> bool {
    if stop::stdout_closed() {
        return false;
    }
    if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            log::error!("cannot write to stdout: {e}");
        }
        stop::close_stdout();
        return false;
    }
    true
}

fn summarize(action: &str, tally: &Tally, failures: &[String]) {
    let mut line = format!("{action}: {} nodes, {} ok", tally.total(), tally.ok);
    if tally.failed > 0 {
        line += &format!(", {} failed: {}", tally.failed, failures.join(", "));
    }
    if tally.interrupted > 0 {
        line += &format!(", {} interrupted", tally.interrupted);
    }
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_from_nodes_are_shown_not_obeyed() {
        assert_eq!(
            printable("sha256:ab\x1b[2J\x07x\ny"),
            "sha256:ab\\u{1b}[2J\\u{7}x\\ny"
        );
        assert_eq!(printable("fit01 ok é"), "fit01 ok é");
    }
}
