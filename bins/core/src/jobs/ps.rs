//! baleine-ps's job: what runs where, and is it the same everywhere. Read-only.

use crate::domain::nodes::NodeName;
use crate::domain::record::{Failure, Fields, Stage};
use crate::domain::reference::{repo_digest, ImageRef};
use crate::framework::cli::Tool;
use crate::framework::fleet::{Fleet, Job, Remote, Session};
use crate::framework::input::Request;
use crate::framework::output::printable;
use crate::framework::table::{self, Cell, Column};
use crate::framework::UsageError;
use crate::remote::protocol::Values;
use crate::remote::quote::quote;
use crate::remote::script::{Docker, Script};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;

crate::fleet_args! {
    /// Show the managed container of each node: state (running, exited with its
    /// code, restarting, absent...), image, digest, container id, start time,
    /// uptime, and the node's engine version. When stdout is a terminal it is a
    /// table, one row per node (JSON lines otherwise, and always in the run's
    /// state file); a last summary counts the nodes per digest, so a mixed
    /// fleet is obvious. Read-only.
    #[argh(
        example = "baleine-ps -a",
        example = "baleine-ps 1-10 | jq -r 'select(.state != \"running\") | .node'",
        note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
                else from stdin (node names, or JSON records with a \"node\" field), else from $NODES.",
        error_code(1, "some node could not be asked (its record says where and why)"),
        error_code(2, "usage, configuration or node-list error; nothing was done"),
        error_code(130, "interrupted; every node still got a record"),
        error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
    )]
    pub struct PsArgs {
        timeout: (30, "give up on a node after this long: seconds, or 90s, 5m, 1h30m (default: 30)"),
        /// also list the node's other containers (name, image, state)
        #[argh(switch)]
        pub all_containers: bool,
    }
}

impl Tool for PsArgs {
    const NAME: &'static str = "baleine-ps";

    fn run(self, _: Vec<std::ffi::OsString>) -> Result<ExitCode, UsageError> {
        let fleet = Fleet::prepare(self.fleet_options())?;
        let job = PsJob {
            script: ps_script(&Docker::from_config(&fleet.config), self.all_containers),
            docker: Docker::from_config(&fleet.config),
            digests: Mutex::new(BTreeMap::new()),
        };
        let code = fleet.run(&job);
        if std::io::stderr().is_terminal() {
            job.summarize();
        }
        Ok(code)
    }
}

/// The remote script: the engine version, the managed container as
/// `docker inspect` sees it (or nothing), the repo digests of its image, and
/// with `all_containers` the node's other containers.
/// It only reads: no docker command here changes anything.
pub fn ps_script(docker: &Docker, all_containers: bool) -> String {
    let mut script = Script::new();
    script.stage(Stage::Inspect);
    let version = quote(&docker.words(&["version", "--format", "{{.Server.Version}}"]));
    script.line(&format!(
        "engine=$({version}) || exit 1\necho \"engine=$engine\""
    ));
    // Docker's own template gives the image id (`sha256:…`, no space) before
    // the container's JSON, so the script never reads inside the JSON.
    let inspect = quote(&docker.words(&[
        "inspect",
        "--type",
        "container",
        "--format",
        "{{.Image}} {{json .}}",
        &docker.container,
    ]));
    let digests = quote(&docker.words(&["image", "inspect", "--format", "{{json .RepoDigests}}"]));
    script.line(&format!(
        "if out=$({inspect} 2>&1); then\n\
         printf 'container=%s\\n' \"${{out#* }}\"\n\
         printf 'digests=%s\\n' \"$({digests} \"${{out%% *}}\" 2>/dev/null)\"\n\
         else case $out in *'No such'*) echo container= ;; *) printf '%s\\n' \"$out\" >&2; exit 1 ;; esac; fi"
    ));
    if all_containers {
        let others = quote(&docker.words(&["ps", "-a", "--no-trunc", "--format", "{{json .}}"]));
        script.line(&format!("{others} | sed 's/^/other=/' || exit 1"));
    }
    script.text().to_owned()
}

/// The record for one node from the script's values.
pub fn ps_record(docker: &Docker, values: &Values, others: Vec<Value>, now: u64) -> Fields {
    let mut record = Fields::new().with("engine", values.get("engine").cloned());
    let container: Value = values
        .get("container")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(Value::Null);
    if container.is_null() {
        record.set("state", "absent");
    } else {
        let state = &container["State"];
        let status = state["Status"].as_str().unwrap_or("unknown");
        record.set("state", status);
        if status == "exited" {
            record.set("exit_code", state["ExitCode"].clone());
        }
        let image = container["Config"]["Image"].as_str().unwrap_or_default();
        let digest = match image.split_once('@') {
            Some((_, digest)) => Some(digest.to_owned()),
            None => ImageRef::parse(image).ok().and_then(|reference| {
                repo_digest(
                    &reference,
                    values.get("digests").map_or("[]", String::as_str),
                )
            }),
        };
        record.set("image", image);
        record.set("digest", digest);
        // What the deploy that ran it asked for (the image as asked,
        // options, command), so that this record, fed back to
        // baleine-deploy, runs it again; the digest stays the one of the
        // image it runs, which no label can misstate.
        for (name, value) in crate::domain::labels::deploy_fields(&container["Config"]["Labels"]) {
            if name != "digest" {
                record.set(name, value);
            }
        }
        record.set("container", container["Id"].clone());
        let started = state["StartedAt"].as_str().unwrap_or_default();
        record.set("started_at", started);
        let uptime = crate::domain::clock::parse_utc(started)
            .filter(|_| status == "running")
            .map(|t| now.saturating_sub(t));
        record.set("uptime_s", uptime);
    }
    if !others.is_empty() {
        // The managed container is the record itself; list only the others.
        let others: Vec<Value> = others
            .into_iter()
            .filter(|c| c["Names"].as_str() != Some(docker.container.as_str()))
            .map(|c| {
                serde_json::json!({"name": c["Names"], "image": c["Image"], "state": c["State"], "status": c["Status"], "id": c["ID"]})
            })
            .collect();
        record.set("other_containers", others);
    }
    record
}

/// Reports the managed container of every node, and remembers which node
/// runs which digest for the terminal summary.
struct PsJob {
    script: String,
    docker: Docker,
    digests: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Job for PsJob {
    type Context = ();

    fn action(&self) -> &'static str {
        "ps"
    }

    fn start(&self, _: &NodeName, _: Option<&Request>) -> Result<Remote<()>, Failure> {
        Ok(Remote::script(self.script.clone()))
    }

    fn columns(&self) -> &'static [Column] {
        &[
            table::NODE,
            Column {
                header: "STATE",
                cell: Cell::With(|record| {
                    let text = |key| {
                        record
                            .get(key)
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                    };
                    match text("state").as_deref() {
                        Some("exited") => {
                            format!("exited ({})", text("exit_code").unwrap_or_default())
                        }
                        other => other.unwrap_or_default().to_owned(),
                    }
                }),
            },
            // The digest has its own column: the image is shown by name.
            Column {
                header: "IMAGE",
                cell: Cell::With(|record| {
                    let image = record
                        .get("image")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default();
                    image.split('@').next().unwrap_or_default().to_owned()
                }),
            },
            table::DIGEST,
            Column {
                header: "UPTIME",
                cell: Cell::Seconds("uptime_s"),
            },
        ]
    }

    fn finish(&self, node: &NodeName, _: (), session: &Session) -> Result<Fields, Failure> {
        let values = session.values()?;
        let others: Vec<Value> = session
            .repeated("other")
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect();
        let record = ps_record(
            &self.docker,
            &values,
            others,
            crate::domain::clock::now_secs(),
        );
        let key = match (
            record.get("state").and_then(Value::as_str),
            record.get("digest").and_then(Value::as_str),
        ) {
            (Some("absent"), _) => "no container".to_owned(),
            (_, Some(digest)) => digest.to_owned(),
            _ => "unknown digest".to_owned(),
        };
        self.digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .push(node.to_string());
        Ok(record)
    }
}

impl PsJob {
    /// How many nodes run which digest, so a mixed fleet is obvious.
    fn summarize(&self) {
        let digests = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        for (digest, nodes) in digests.iter() {
            let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
            let folded = crate::domain::nodes::fold_for_display(&nodes);
            // As the table shows it (12 hex digits). The digest is what a
            // node said: print it, never obey it.
            let short: String = digest
                .strip_prefix("sha256:")
                .unwrap_or(digest)
                .chars()
                .take(12)
                .collect();
            let line = format!("ps: {} on {short}: {folded}", nodes.len());
            eprintln!("{}", printable(&line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker() -> Docker {
        Docker::default()
    }

    #[test]
    fn the_script_only_reads() {
        let script = ps_script(&docker(), true);
        for verb in [
            "rm", "run", "stop", "kill", "commit", "push", "pull", "prune", "exec",
        ] {
            assert!(
                !script.contains(&format!("docker {verb} ")),
                "ps runs docker {verb}"
            );
        }
        assert!(script.contains(
            "docker inspect --type container --format '{{.Image}} {{json .}}' container"
        ));
    }

    #[test]
    fn records_say_running_or_exited_or_absent() {
        let mut values = Values::new();
        values.insert("engine".into(), "20.10.24".into());
        values.insert(
            "container".into(),
            r#"{"Id":"abc","Config":{"Image":"busybox@sha256:1111"},"State":{"Status":"running","StartedAt":"2026-11-22T00:00:00.5Z","ExitCode":0}}"#.into(),
        );
        let now = crate::domain::clock::parse_utc("2026-11-22T00:01:40Z").unwrap();
        let record = ps_record(&docker(), &values, vec![], now);
        assert_eq!(record.get("state").unwrap(), "running");
        assert_eq!(record.get("digest").unwrap(), "sha256:1111");
        assert_eq!(record.get("uptime_s").unwrap(), 100);

        values.insert(
            "container".into(),
            r#"{"Id":"abc","Config":{"Image":"busybox"},"State":{"Status":"exited","StartedAt":"2026-11-22T00:00:00Z","ExitCode":3}}"#.into(),
        );
        values.insert("digests".into(), r#"["busybox@sha256:2222"]"#.into());
        let record = ps_record(&docker(), &values, vec![], now);
        assert_eq!(
            (
                record.get("state").unwrap(),
                record.get("exit_code").unwrap()
            ),
            (&"exited".into(), &3.into())
        );
        assert_eq!(record.get("digest").unwrap(), "sha256:2222");
        assert_eq!(record.get("uptime_s").unwrap(), &Value::Null);

        values.insert("container".into(), String::new());
        assert_eq!(
            ps_record(&docker(), &values, vec![], now)
                .get("state")
                .unwrap(),
            "absent"
        );
    }
}
