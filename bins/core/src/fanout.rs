//! Fan-out: a bounded pool of worker threads turns every input node into exactly one record.

use crate::input::Input;
use crate::record::{Failure, Record, Stage};
use crate::stop;
use crossbeam::channel::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How often an idle worker looks up from its queue to notice an interrupt
/// while stdin is still open.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// Runs `work` on each node from `inputs` with at most `parallel` at once,
/// sending one record per node (and per invalid input line) to `records`.
/// Once the run is stopping, nodes not yet started get `interrupted` records.
pub fn run(
    action: &str,
    parallel: usize,
    inputs: &Receiver<Input>,
    records: &Sender<Record>,
    work: &(dyn Fn(&str) -> Record + Sync),
) {
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            scope.spawn(|| worker(action, inputs, records, work));
        }
    });
}

fn worker(
    action: &str,
    inputs: &Receiver<Input>,
    records: &Sender<Record>,
    work: &(dyn Fn(&str) -> Record + Sync),
) {
    loop {
        let input = match inputs.recv_timeout(IDLE_CHECK) {
            Ok(input) => input,
            Err(RecvTimeoutError::Timeout) if stop::stopping() => {
                // Stdin may stay open forever: record what is queued and quit.
                while let Ok(input) = inputs.try_recv() {
                    let _ = records.send(record_for(action, input, work));
                }
                return;
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if records.send(record_for(action, input, work)).is_err() {
            return;
        }
    }
}

fn record_for(action: &str, input: Input, work: &(dyn Fn(&str) -> Record + Sync)) -> Record {
    let node = match input {
        Input::Node(node) => node,
        invalid => return invalid.into_record(action),
    };
    if stop::stopping() {
        return Input::Node(node).into_record(action);
    }
    let started = Instant::now();
    let mut record = work(&node);
    // A tool may time its node itself (deploy excludes waiting for the pin).
    if record.get("elapsed_ms").is_none() {
        record.set("elapsed_ms", started.elapsed().as_millis() as u64);
    }
    record
}

/// The record of a node whose work was stopped by an interrupt.
pub fn interrupted(node: &str, action: &str, why: &str) -> Record {
    Record::failure(Some(node), action, &Failure::new(Stage::Interrupted, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::unbounded;

    #[test]
    fn every_input_gets_exactly_one_record() {
        let (tx, rx) = unbounded();
        for i in 0..50 {
            tx.send(Input::Node(format!("fit{i:02}"))).unwrap();
        }
        tx.send(Input::Invalid {
            node: None,
            line: 3,
            error: "bad".into(),
        })
        .unwrap();
        drop(tx);
        let (rtx, rrx) = unbounded();
        run("test", 8, &rx, &rtx, &|node| {
            if node.ends_with('7') {
                Record::failure(Some(node), "test", &Failure::new(Stage::Run, "boom"))
            } else {
                Record::success(node, "test")
            }
        });
        drop(rtx);
        let records: Vec<Record> = rrx.iter().collect();
        assert_eq!(records.len(), 51);
        assert_eq!(records.iter().filter(|r| r.is_ok()).count(), 45);
        assert!(records
            .iter()
            .all(|r| r.get("elapsed_ms").is_some() || r.stage() == Some("input")));
    }
}
