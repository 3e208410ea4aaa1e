//! baleine-deploy's job: run one image as the managed container on many nodes, all on the same bits.
//!
//! The first node deploys alone and resolves the image's digest (warming the
//! mirror on the way); every other node then runs `IMAGE@sha256:…`, so a tag
//! that moves mid-deploy cannot give two nodes different images.

use crate::cli::Fleet;
use crate::input::Input;
use crate::record::{Failure, Record, Stage};
use crate::reference::ImageRef;
use crate::remote::{Docker, Script};
use crate::{stop, UsageError};
use std::process::{Command, ExitCode, Stdio};
use std::str::FromStr;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// When to pull the image before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    Missing,
    Never,
}

impl FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "--pull must be always, missing or never, not {other:?}"
            )),
        }
    }
}

/// Everything about one deploy that is the same on every node.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// The image as the user named it (reported as `image`).
    pub image: ImageRef,
    /// Extra `docker run` options, already split into words.
    pub options: Vec<String>,
    /// The container's command and arguments (after `--`).
    pub command: Vec<String>,
    pub pull: PullPolicy,
    /// Stop gracefully for this long before removing (default: remove at once).
    pub stop_timeout: Option<u32>,
    /// Pin the other nodes to the first node's digest.
    pub pin: bool,
    /// Reload the nodes with this rhubarbe image first.
    pub bootstrap: Option<String>,
}

impl DeployPlan {
    /// Checks the user's image and options; problems are usage errors.
    pub fn new(
        image: &str,
        options: Option<&str>,
        command: Vec<String>,
    ) -> Result<DeployPlan, UsageError> {
        let image = ImageRef::parse(image).map_err(|e| UsageError(e.to_string()))?;
        let options = match options {
            Some(text) => shell_words::split(text)
                .map_err(|e| UsageError(format!("--options {text:?}: {e}")))?,
            None => Vec::new(),
        };
        Ok(DeployPlan {
            image,
            options,
            command,
            pull: PullPolicy::Always,
            stop_timeout: None,
            pin: true,
            bootstrap: None,
        })
    }
}

/// The remote script deploying on one node: remove the managed container,
/// pull (unless pinned), run, and report the digest when not pinned.
pub fn deploy_script(
    plan: &DeployPlan,
    docker: &Docker,
    run_options: &[String],
    pinned: Option<&ImageRef>,
) -> String {
    let mut script = Script::new();
    docker.remove_managed(&mut script, plan.stop_timeout);
    let image = pinned.unwrap_or(&plan.image).to_string();
    // A digest cannot change, so a pinned image present on the node needs no
    // registry round trip: `missing` is `always` for digests, only faster.
    let pull_flag = match (plan.pull, pinned) {
        (PullPolicy::Never, _) => Some("--pull=never"),
        (_, Some(_)) | (PullPolicy::Missing, None) => Some("--pull=missing"),
        (PullPolicy::Always, None) => {
            script.stage(Stage::Pull);
            // Progress goes to stdout, errors to stderr.
            let pull = crate::remote::quote(&docker.words(&["pull", &image]));
            script.line(&format!("{pull} >/dev/null || exit 1"));
            None
        }
    };
    let mut run: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        docker.container.clone(),
    ];
    run.extend(pull_flag.map(String::from));
    run.extend(run_options.iter().cloned());
    run.extend(plan.options.iter().cloned());
    run.push(image.clone());
    run.extend(plan.command.iter().cloned());
    docker.run_container(&mut script, &run, &image);
    if pinned.is_none() {
        script.stage(Stage::Inspect);
        let inspect = crate::remote::quote(&docker.words(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ]));
        script.line(&format!("printf 'digests='; {inspect} || exit 1"));
    }
    script.text().to_owned()
}

/// Picks the repo digest of `image` among an image's RepoDigests (a JSON list
/// like `["busybox@sha256:…"]`, names in Docker's short form).
pub fn repo_digest(image: &ImageRef, repo_digests_json: &str) -> Option<String> {
    let list: Vec<String> = serde_json::from_str(repo_digests_json).ok()?;
    let wanted = short_name(&image.repository());
    let digest_of = |entry: &String| {
        entry
            .split_once('@')
            .map(|(name, d)| (short_name(name), d.to_owned()))
    };
    let matching = list
        .iter()
        .filter_map(digest_of)
        .find(|(name, _)| *name == wanted);
    match matching {
        Some((_, digest)) => Some(digest),
        None if list.len() == 1 => digest_of(&list[0]).map(|(_, d)| d),
        None => None,
    }
}

/// Docker's short form of a repository name: `docker.io/library/x` → `x`.
fn short_name(name: &str) -> String {
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    name.strip_prefix("library/").unwrap_or(name).to_owned()
}

/// The first node resolves the digest; the others wait for it.
struct Pin {
    state: Mutex<PinState>,
    resolved: Condvar,
}

enum PinState {
    Unclaimed,
    Resolving,
    Resolved(Option<ImageRef>),
}

enum Role {
    First,
    Follow(Option<ImageRef>),
    Stopped,
}

impl Pin {
    fn new(enabled: bool) -> Pin {
        let state = if enabled {
            PinState::Unclaimed
        } else {
            PinState::Resolved(None)
        };
        Pin {
            state: Mutex::new(state),
            resolved: Condvar::new(),
        }
    }

    fn role(&self) -> Role {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*state {
                PinState::Unclaimed => {
                    *state = PinState::Resolving;
                    return Role::First;
                }
                PinState::Resolved(image) => return Role::Follow(image.clone()),
                PinState::Resolving if stop::stopping() => return Role::Stopped,
                PinState::Resolving => {
                    state = self
                        .resolved
                        .wait_timeout(state, Duration::from_millis(100))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    fn resolve(&self, image: Option<ImageRef>) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = PinState::Resolved(image);
        self.resolved.notify_all();
    }
}

/// Deploys `plan` on every node of `fleet`, one record per node.
pub fn run(fleet: Fleet, plan: DeployPlan) -> ExitCode {
    let docker = Docker::from_config(&fleet.config);
    let run_options = fleet.config.run_options();
    let pin = Pin::new(plan.pin && !fleet.dry_run);
    let work = |node: &str| -> Record {
        let role = pin.role();
        if stop::stopping() {
            // Waiting for the first node may have outlasted the run.
            return crate::fanout::interrupted(node, "deploy", "interrupted before starting");
        }
        let pinned = match &role {
            Role::Stopped => {
                return crate::fanout::interrupted(node, "deploy", "interrupted before starting")
            }
            Role::First => None,
            Role::Follow(image) => image.clone(),
        };
        let started = std::time::Instant::now();
        let script = deploy_script(&plan, &docker, &run_options, pinned.as_ref());
        if fleet.dry_run {
            return fleet.dry_run_record(node, "deploy", &script);
        }
        let result = fleet.run_script(node, &script);
        let digest = match (&result, &pinned) {
            (_, Some(image)) => image.digest.clone(),
            (Ok(values), None) => values
                .get("digests")
                .and_then(|d| repo_digest(&plan.image, d)),
            (Err(_), None) => None,
        };
        if matches!(role, Role::First) {
            // A failed first node leaves the others unpinned rather than stuck.
            pin.resolve(digest.as_ref().and_then(|d| plan.image.with_digest(d).ok()));
        }
        let record = match result {
            Ok(values) => Record::success(node, "deploy")
                .with("image", plan.image.to_string())
                .with("digest", digest)
                .with("container", values.get("container").cloned())
                .with("pinned", pinned.is_some())
                .with("replaced", values.get("removed").map(|r| r == "true")),
            Err(failure) => Record::failure(Some(node), "deploy", &failure)
                .with("image", plan.image.to_string()),
        };
        // The node's own time, without waiting for the first node's digest.
        record.with("elapsed_ms", started.elapsed().as_millis() as u64)
    };
    match &plan.bootstrap {
        None => fleet.run("deploy", &work),
        Some(ndz) => bootstrap_then_run(&fleet, ndz, &work),
    }
}

/// `--bootstrap`: reload every node with `rhubarbe load`, wait for them with
/// `rhubarbe wait`, then deploy on those that came back. This needs the whole
/// node list first, so input is collected before anything starts.
fn bootstrap_then_run(
    fleet: &Fleet,
    ndz: &str,
    work: &(dyn Fn(&str) -> Record + Sync),
) -> ExitCode {
    let inputs: Vec<Input> = fleet.inputs().iter().collect();
    let nodes: Vec<String> = inputs
        .iter()
        .filter_map(Input::node)
        .map(String::from)
        .collect();
    let failed = if nodes.is_empty() || fleet.dry_run {
        Vec::new()
    } else {
        bootstrap(fleet, ndz, &nodes)
    };
    // Nodes that did not come back are settled here; the rest go on.
    let (mut settled, mut remaining) = (Vec::new(), Vec::new());
    for input in inputs {
        let lost = input
            .node()
            .and_then(|node| failed.iter().find(|(n, _)| n == node));
        match lost {
            Some((node, error)) => {
                let failure = Failure::new(Stage::Bootstrap, error.clone());
                settled.push(Record::failure(Some(node), "deploy", &failure));
            }
            None => remaining.push(input),
        }
    }
    let rx = crate::input::replay(remaining);
    fleet.run_inputs(
        "deploy",
        &rx,
        |records| {
            for record in settled {
                let _ = records.send(record);
            }
        },
        work,
    )
}

/// Runs rhubarbe load and wait; returns the nodes that did not come back, with why.
fn bootstrap(fleet: &Fleet, ndz: &str, nodes: &[String]) -> Vec<(String, String)> {
    let ndz = if ndz == "default" {
        fleet.config.default_bootstrap_image.to_string()
    } else {
        ndz.to_owned()
    };
    let rhubarbe = &fleet.config.rhubarbe;
    let call = |args: &[&str]| -> Result<String, String> {
        let Some((program, fixed)) = rhubarbe.split_first() else {
            return Err("RHUBARBE is empty".into());
        };
        let out = Command::new(program)
            .args(fixed)
            .args(args)
            .args(nodes)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    };
    let load_error = call(&["load", "-i", &ndz]).err();
    let waited = call(&["wait"]).unwrap_or_else(|text| text);
    let back: Vec<String> = waited
        .lines()
        .filter_map(|line| line.split_once(":ssh "))
        .filter(|(_, status)| status.trim() == "OK")
        .map(|(name, _)| {
            name.trim()
                .trim_start_matches("<Node ")
                .trim_end_matches('>')
                .to_owned()
        })
        .collect();
    let why = match &load_error {
        Some(text) => format!("rhubarbe load -i {ndz} failed: {}", text.trim()),
        None => format!("did not come back after rhubarbe load -i {ndz} (rhubarbe wait)"),
    };
    nodes
        .iter()
        .filter(|n| !back.contains(n))
        .map(|n| (n.clone(), why.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker() -> Docker {
        Docker::default()
    }

    #[test]
    fn first_node_pulls_runs_and_inspects_with_every_word_quoted() {
        let mut plan = DeployPlan::new(
            "busybox",
            Some("-e 'MSG=hello world'"),
            vec!["sh".into(), "-c".into(), "echo $MSG; id".into()],
        )
        .unwrap();
        plan.stop_timeout = None;
        let script = deploy_script(&plan, &docker(), &["--network=host".into()], None);
        assert!(script.contains("docker pull busybox >/dev/null || exit 1"));
        assert!(script.contains("docker run -d --name container '--network=host' -e 'MSG=hello world' busybox sh -c 'echo $MSG; id'"));
        assert!(script.contains("{{json .RepoDigests}}"));
    }

    #[test]
    fn pinned_nodes_run_the_digest_without_a_separate_pull_or_inspect() {
        let plan = DeployPlan::new("busybox", None, vec![]).unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = plan.image.with_digest(&digest).unwrap();
        let script = deploy_script(&plan, &docker(), &[], Some(&pinned));
        assert!(!script.contains("docker pull"));
        assert!(script.contains(&format!("'--pull=missing' busybox@{digest}")));
        assert!(!script.contains("RepoDigests"));
    }

    #[test]
    fn pull_never_is_honoured_even_when_pinned() {
        let mut plan = DeployPlan::new("busybox", None, vec![]).unwrap();
        plan.pull = PullPolicy::Never;
        let pinned = plan
            .image
            .with_digest(&format!("sha256:{}", "b".repeat(64)))
            .unwrap();
        assert!(deploy_script(&plan, &docker(), &[], Some(&pinned)).contains("--pull=never"));
        assert!(deploy_script(&plan, &docker(), &[], None).contains("--pull=never"));
    }

    #[test]
    fn bad_options_and_images_are_usage_errors() {
        assert!(DeployPlan::new("busybox", Some("-e 'unterminated"), vec![]).is_err());
        assert!(DeployPlan::new("-v/:/host", None, vec![]).is_err());
        assert!(DeployPlan::new("Busybox", None, vec![]).is_err());
    }

    #[test]
    fn repo_digest_picks_the_entry_of_the_deployed_repository() {
        let busybox = ImageRef::parse("busybox").unwrap();
        let list = r#"["other@sha256:1111","busybox@sha256:2222"]"#;
        assert_eq!(repo_digest(&busybox, list).as_deref(), Some("sha256:2222"));
        let long = ImageRef::parse("docker.io/library/busybox:latest").unwrap();
        assert_eq!(repo_digest(&long, list).as_deref(), Some("sha256:2222"));
        let repo = ImageRef::parse("faraday.repo/x:v1").unwrap();
        assert_eq!(
            repo_digest(&repo, r#"["faraday.repo/x@sha256:3333"]"#).as_deref(),
            Some("sha256:3333")
        );
        assert_eq!(repo_digest(&repo, "[]"), None);
    }
}
