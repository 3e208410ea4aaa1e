//! Fan-out: a bounded pool of worker threads turns every input node into exactly one record.

use crate::domain::nodes::NodeName;
use crate::domain::record::{Failure, Record, Stage};
use crate::domain::stop;
use crate::framework::input::{Input, Request};
use crossbeam::channel::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How often an idle worker looks up from its queue to notice an interrupt
/// while stdin is still open.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// What the pool does with one node: its work, and the failure of a node
/// the run stopped before it began (the job's own: it may say what that
/// leaves on the node).
pub struct NodeWork<'a> {
    pub work: &'a (dyn Fn(&NodeName, Option<&Request>) -> Record + Sync),
    pub not_started: &'a (dyn Fn(&NodeName, Option<&Request>) -> Failure + Sync),
}

/// Runs the work on each node from `inputs` with at most `parallel` at once,
/// sending one record per node (and per invalid input line) to `records`.
/// Once the run is stopping, nodes not yet started get `interrupted` records.
pub fn run(
    action: &'static str,
    parallel: usize,
    inputs: &Receiver<Input>,
    records: &Sender<Record>,
    work: &NodeWork,
) {
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            scope.spawn(|| worker(action, inputs, records, work));
        }
    });
    // The workers quit once the run stops; what the reader sends after them
    // (the nodes it held back, read before it saw the stop) still gets its
    // record. A refused input ends the reader: wait for its last nodes; an
    // interrupt may leave it blocked on an open stdin: take what came.
    let wait = match stop::input_refused() {
        Some(_) => Duration::from_secs(10),
        None => LATE_INPUTS,
    };
    let until = Instant::now() + wait;
    while let Ok(input) = inputs.recv_timeout(until.saturating_duration_since(Instant::now())) {
        let _ = records.send(record_for(action, input, work));
    }
}

/// How long, after an interrupt, inputs the reader was still sending get
/// their records.
const LATE_INPUTS: Duration = Duration::from_millis(200);

fn worker(
    action: &'static str,
    inputs: &Receiver<Input>,
    records: &Sender<Record>,
    work: &NodeWork,
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

fn record_for(action: &'static str, input: Input, work: &NodeWork) -> Record {
    let Some((node, request)) = input.work() else {
        return input.into_record(action);
    };
    if stop::stopping() {
        return Record::failure(Some(node), action, &(work.not_started)(node, request));
    }
    let started = Instant::now();
    // A bug of ours on one node must not cost the other nodes' records, nor
    // this node's: the panic becomes its failure.
    let mut record = guarded(|| (work.work)(node, request))
        .unwrap_or_else(|failure| Record::failure(Some(node), action, &failure));
    // A tool may time its node itself (deploy excludes waiting for the pin).
    if record.get("elapsed_ms").is_none() {
        record.set("elapsed_ms", started.elapsed().as_millis() as u64);
    }
    record
}

/// Runs `work`, turning a panic (a bug of ours) into an `internal` failure
/// that says so, so that the caller still writes its record.
pub fn guarded<R>(work: impl FnOnce() -> R) -> Result<R, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Failure::new(
            Stage::Internal,
            format!("internal error (a bug in baleine, please report it): {message}"),
        )
    })
}

/// Runs `work` on every item with at most `parallel` threads, and hands
/// the results to `emit` in the items' order as soon as each one's turn
/// comes (a panicking item as its `internal` failure). Stops handing out
/// items once `emit` returns false or the run is stopping (items not
/// started then are not emitted).
pub fn in_order<T: Sync, R: Send>(
    parallel: usize,
    items: &[T],
    work: &(dyn Fn(&T) -> R + Sync),
    mut emit: impl FnMut(Result<R, Failure>) -> bool,
) {
    let (jobs_tx, jobs) = crossbeam::channel::unbounded();
    for job in items.iter().enumerate() {
        let _ = jobs_tx.send(job);
    }
    drop(jobs_tx);
    let (done_tx, done) = crossbeam::channel::unbounded();
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, items.len().max(1)) {
            let (jobs, done_tx) = (jobs.clone(), done_tx.clone());
            scope.spawn(move || {
                for (index, item) in jobs {
                    if stop::stopping() || done_tx.send((index, guarded(|| work(item)))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut waiting = std::collections::BTreeMap::new();
        let mut next = 0;
        for (index, result) in &done {
            waiting.insert(index, result);
            while let Some(result) = waiting.remove(&next) {
                next += 1;
                if !emit(result) {
                    // Let the workers see a closed channel and stop.
                    drop(done);
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::unbounded;

    fn node_work(work: &(dyn Fn(&NodeName, Option<&Request>) -> Record + Sync)) -> NodeWork<'_> {
        NodeWork {
            work,
            not_started: &|_, _| Failure::not_started(),
        }
    }

    #[test]
    fn a_panicking_worker_still_gives_its_node_one_record() {
        let (tx, rx) = unbounded();
        for node in ["fit01", "fit02", "fit03"] {
            tx.send(Input::Node(NodeName::new(node).unwrap())).unwrap();
        }
        drop(tx);
        let (rtx, rrx) = unbounded();
        let work = |node: &NodeName, _: Option<&Request>| {
            if node == "fit02" {
                panic!("boom on {node}");
            }
            Record::success(node, "test")
        };
        run("test", 2, &rx, &rtx, &node_work(&work));
        drop(rtx);
        let records: Vec<Record> = rrx.iter().collect();
        assert_eq!(records.len(), 3);
        let failed = records.iter().find(|r| r.node() == Some("fit02")).unwrap();
        assert_eq!(failed.stage(), Some(Stage::Internal));
        assert!(failed.error().unwrap().contains("boom on fit02"));
    }

    #[test]
    fn results_come_out_in_the_items_order() {
        let items: Vec<u64> = (0..40).collect();
        let mut seen = Vec::new();
        in_order(8, &items, &|n| n * 2, |r| {
            seen.push(r.unwrap());
            true
        });
        assert_eq!(seen, items.iter().map(|n| n * 2).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_item_comes_out_as_its_failure_in_its_turn() {
        let items: Vec<u64> = (0..10).collect();
        let mut seen = Vec::new();
        in_order(
            4,
            &items,
            &|n| {
                assert!(*n != 5, "boom on item 5");
                *n
            },
            |r| {
                seen.push(r.map_err(|failure| failure.error));
                true
            },
        );
        assert_eq!(seen.len(), 10);
        assert!(seen[5]
            .as_ref()
            .is_err_and(|e| e.contains("boom on item 5")));
        assert_eq!(seen[6], Ok(6));
    }

    #[test]
    fn emit_can_stop_the_run() {
        let items: Vec<u64> = (0..1000).collect();
        let mut seen = 0;
        in_order(4, &items, &|n| *n, |_| {
            seen += 1;
            seen < 3
        });
        assert_eq!(seen, 3);
    }

    #[test]
    fn every_input_gets_exactly_one_record() {
        let (tx, rx) = unbounded();
        for i in 0..50 {
            tx.send(Input::Node(NodeName::new(&format!("fit{i:02}")).unwrap()))
                .unwrap();
        }
        tx.send(Input::Invalid {
            node: None,
            line: 3,
            error: "bad".into(),
        })
        .unwrap();
        drop(tx);
        let (rtx, rrx) = unbounded();
        let work = |node: &NodeName, _: Option<&Request>| {
            if node.ends_with('7') {
                Record::failure(Some(node), "test", &Failure::new(Stage::Run, "boom"))
            } else {
                Record::success(node, "test")
            }
        };
        run("test", 8, &rx, &rtx, &node_work(&work));
        drop(rtx);
        let records: Vec<Record> = rrx.iter().collect();
        assert_eq!(records.len(), 51);
        assert_eq!(records.iter().filter(|r| r.is_ok()).count(), 45);
        assert!(records
            .iter()
            .all(|r| r.get("elapsed_ms").is_some() || r.stage() == Some(Stage::Input)));
    }
}
