//! baleine-destroy's job: remove the managed container on each node, and nothing else.

use crate::cli::Fleet;
use crate::input::Input;
use crate::record::Record;
use crate::remote::{Docker, Script};
use crate::UsageError;
use crossbeam::channel::Receiver;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;

/// The remote script: remove the managed container by name (never a prune,
/// never another container or image) and say whether there was one.
pub fn destroy_script(docker: &Docker, stop_timeout: Option<u32>) -> String {
    let mut script = Script::new();
    docker.remove_managed(&mut script, stop_timeout);
    script.text().to_owned()
}

/// Removes the managed container on every node of `fleet`.
pub fn run(fleet: Fleet, stop_timeout: Option<u32>) -> ExitCode {
    let inputs = fleet.inputs();
    run_inputs(&fleet, &inputs, stop_timeout)
}

fn run_inputs(fleet: &Fleet, inputs: &Receiver<Input>, stop_timeout: Option<u32>) -> ExitCode {
    let docker = Docker::from_config(&fleet.config);
    let script = destroy_script(&docker, stop_timeout);
    fleet.run_inputs("destroy", inputs, |_| {}, &|node| {
        if fleet.dry_run {
            return fleet.dry_run_record(node, "destroy", &script);
        }
        match fleet.run_script(node, &script) {
            Err(failure) => Record::failure(Some(node), "destroy", &failure),
            Ok(values) => Record::success(node, "destroy")
                .with("container", docker.container.clone())
                .with("removed", values.get("removed").map(|r| r == "true")),
        }
    })
}

/// Without `-y`: collect the node list, name it on the terminal (stdin may be
/// carrying the list, so we ask on /dev/tty), and remove only on "y".
pub fn run_confirmed(fleet: Fleet, stop_timeout: Option<u32>) -> Result<ExitCode, UsageError> {
    let no_terminal =
        || UsageError("no terminal to confirm on: pass -y to destroy without asking".into());
    let mut tty = File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| no_terminal())?;
    let inputs: Vec<Input> = fleet.inputs().iter().collect();
    let nodes: Vec<&str> = inputs.iter().filter_map(Input::node).collect();
    if !nodes.is_empty() {
        write!(
            tty,
            "remove the managed container on {} node(s): {}? [y/N] ",
            nodes.len(),
            nodes.join(" ")
        )
        .map_err(|_| no_terminal())?;
        let mut answer = String::new();
        BufReader::new(tty)
            .read_line(&mut answer)
            .map_err(|_| no_terminal())?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES") {
            eprintln!("baleine-destroy: cancelled, nothing removed");
            return Ok(ExitCode::from(crate::exit::SOME_NODE_FAILED));
        }
    }
    Ok(run_inputs(
        &fleet,
        &crate::input::replay(inputs),
        stop_timeout,
    ))
}
