//! baleine-destroy's job: remove the managed container on each node, and nothing else.

use crate::domain::nodes::NodeName;
use crate::domain::record::{Failure, Fields};
use crate::framework::cli::Tool;
use crate::framework::fleet::{Fleet, Job, Remote, Session};
use crate::framework::input::Request;
use crate::framework::input::{replay, Input};
use crate::framework::table::{self, Cell, Column};
use crate::framework::{confirm, UsageError};
use crate::remote::script::{Docker, Script};
use std::process::ExitCode;

crate::fleet_args! {
    /// Remove the container baleine manages on each node (never other containers
    /// or images) and print one JSON record per node, with "removed": false when
    /// there was none. Asks for confirmation on the terminal unless -y is given.
    #[argh(
        example = "baleine-destroy -y 1-5",
        example = "baleine-deploy -i busybox 1-5 | jq -c 'select(.ok)' | baleine-destroy -y",
        note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
                else from stdin (node names, or JSON records with a \"node\" field), else from $NODES.",
        error_code(1, "some node failed (its record says where and why)"),
        error_code(
            2,
            "usage, configuration or node-list error, or no terminal to confirm on; nothing was done"
        ),
        error_code(130, "interrupted; every node still got a record"),
        error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
    )]
    pub struct DestroyArgs {
        timeout: (120, "give up on a node after this long: seconds, or 90s, 5m, 1h30m (default: 120)"),
        /// do not ask for confirmation
        #[argh(switch, short = 'y')]
        pub yes: bool,
        /// stop the container gracefully, waiting up to this long: seconds, or 90s, 5m (default: remove at once)
        #[argh(option, arg_name = "DURATION", from_str_fn(crate::framework::args::seconds))]
        pub stop_timeout: Option<u64>,
    }
}

impl Tool for DestroyArgs {
    const NAME: &'static str = "baleine-destroy";

    fn run(self, _: Vec<std::ffi::OsString>) -> Result<ExitCode, UsageError> {
        let fleet = Fleet::prepare(self.fleet_options())?;
        let job = DestroyJob::new(&fleet, self.stop_timeout);
        if self.yes || fleet.dry_run {
            return Ok(fleet.run(&job));
        }
        match confirmed(&fleet)? {
            _ if crate::domain::stop::interrupted() => {
                eprintln!("baleine-destroy: interrupted, nothing removed");
                Ok(ExitCode::from(crate::framework::exit::interrupted_status()))
            }
            Some(inputs) => Ok(fleet.run_inputs(&job, &replay(inputs), Vec::new())),
            // Not 1, which says a node failed: nothing was done.
            None => {
                eprintln!("baleine-destroy: cancelled, nothing removed");
                Ok(ExitCode::from(crate::framework::exit::USAGE))
            }
        }
    }
}

/// Removes the managed container by name, the same script on every node.
pub struct DestroyJob {
    docker: Docker,
    script: String,
}

impl DestroyJob {
    pub fn new(fleet: &Fleet, stop_timeout: Option<u64>) -> DestroyJob {
        let docker = Docker::from_config(&fleet.config);
        let script = destroy_script(&docker, stop_timeout);
        DestroyJob { docker, script }
    }
}

impl Job for DestroyJob {
    type Context = ();

    fn action(&self) -> &'static str {
        "destroy"
    }

    fn columns(&self) -> &'static [Column] {
        &[
            table::NODE,
            Column {
                header: "CONTAINER",
                cell: Cell::Text("container"),
            },
            Column {
                header: "REMOVED",
                cell: Cell::With(
                    |record| match record.get("removed").and_then(|r| r.as_bool()) {
                        Some(true) => "removed".into(),
                        Some(false) => "none there".into(),
                        None => String::new(),
                    },
                ),
            },
            table::TOOK,
        ]
    }

    fn start(&self, _: &NodeName, _: Option<&Request>) -> Result<Remote<()>, Failure> {
        Ok(Remote::script(self.script.clone()))
    }

    fn finish(&self, _: &NodeName, _: (), session: &Session) -> Result<Fields, Failure> {
        let values = session.values()?;
        Ok(Fields::new()
            .with("container", self.docker.container.clone())
            .with("removed", values.get("removed").map(|r| r == "true")))
    }
}

/// The remote script: remove the managed container by name (never a prune,
/// never another container or image) and say whether there was one.
pub fn destroy_script(docker: &Docker, stop_timeout: Option<u64>) -> String {
    let mut script = Script::new();
    docker.remove_managed(&mut script, stop_timeout);
    script.text().to_owned()
}

/// Reads the whole node list, names it on the terminal and returns it on "y".
fn confirmed(fleet: &Fleet) -> Result<Option<Vec<Input>>, UsageError> {
    // Checked before the list is read: no terminal, no question.
    if std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_err()
    {
        return Err(UsageError(
            "no terminal to confirm on: pass -y to destroy without asking".into(),
        ));
    }
    let inputs = fleet.all_inputs(None);
    let nodes: Vec<&str> = inputs.iter().filter_map(Input::node).collect();
    if nodes.is_empty() || crate::domain::stop::interrupted() {
        return Ok(Some(inputs));
    }
    let question = format!(
        "remove the managed container on {} node(s): {}?",
        nodes.len(),
        nodes.join(" ")
    );
    Ok(confirm::ask(&question, "destroy")?.then_some(inputs))
}
