//! baleine-deploy's job: run one image as the managed container on many nodes, all on the same bits.
//!
//! The first node deploys alone and resolves the image's digest (warming the
//! mirror on the way); every other node then runs `IMAGE@sha256:…`, so a tag
//! that moves mid-deploy cannot give two nodes different images.

use crate::domain::nodes::expand_placeholders;
use crate::domain::nodes::NodeName;
use crate::domain::record::{Failure, Fields, Record, Stage};
use crate::domain::reference::{repo_digest, target_image, ImageRef, PullPolicy};
use crate::domain::stop;
use crate::framework::cli::Tool;
use crate::framework::fleet::{Fleet, Job, Remote, Session};
use crate::framework::input::Request;
use crate::framework::input::{replay, Input};
use crate::framework::UsageError;
use crate::remote::protocol::EARLY_MARK;
use crate::remote::quote::{quote, quote_word};
use crate::remote::script::{Docker, Script};
use crate::remote::ssh::{LineFeed, Ssh};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

crate::fleet_args! {
    /// Run IMAGE as the managed container on each node: pull it, then replace
    /// the previous container with it, and print one JSON record per node. A
    /// failed pull leaves the previous container running; a container that
    /// exits at once is a failure, with its status and last lines. The first
    /// node resolves the image digest; the others run that exact digest.
    #[argh(
        example = "rhubarbe nodes 1-5 | baleine-deploy -i busybox -- sleep infinity",
        example = "baleine-deploy -i faraday.repo/myexp:v2 --options \"-e 'MSG=hello world'\" 1-10 ~7",
        note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
                else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
                Words after -- are the container's command. In the command and --options, {{node}} and {{index}} \
                become each node's name and number (fit07, 7); {{{{ and }}}} are braces.",
        error_code(1, "some node failed (its record says where and why)"),
        error_code(2, "usage, configuration or node-list error; nothing was done"),
        error_code(130, "interrupted; every node still got a record")
    )]
    pub struct DeployArgs {
        timeout: (600, "give up on a node after this long: seconds, or 90s, 5m, 2h (default: 600)"),
        /// image to run (Docker reference: busybox, faraday.repo/name:tag, name@sha256:...)
        #[argh(option, short = 'i')]
        pub image: String,
        /// extra docker run options, split like a shell would ("-e 'MSG=hello world'")
        #[argh(option)]
        pub options: Option<String>,
        /// when to pull: always (default), missing or never
        #[argh(option, default = "PullPolicy::Always", from_str_fn(pull_policy))]
        pub pull: PullPolicy,
        /// reload the nodes with this rhubarbe image first ("default" for DEFAULT_BOOTSTRAP_IMAGE)
        #[argh(option)]
        pub bootstrap: Option<String>,
        /// stop the old container gracefully, waiting up to this long: seconds, or 90s, 5m (default: remove at once)
        #[argh(option, from_str_fn(crate::framework::args::seconds))]
        pub stop_timeout: Option<u64>,
        /// do not pin the other nodes to the digest the first node resolved
        #[argh(switch)]
        pub no_pin: bool,
        /// give each node's record only once its container is ready, waiting up
        /// to this long (90, 90s, 5m): healthy if the image has a HEALTHCHECK, else
        /// still running 2 s after it started, or --ready-cmd succeeding
        #[argh(option, from_str_fn(crate::framework::args::seconds))]
        pub wait: Option<u64>,
        /// with --wait: a command run in the container (sh -c) whose success means ready
        #[argh(option)]
        pub ready_cmd: Option<String>,
    }
}

fn pull_policy(value: &str) -> Result<PullPolicy, String> {
    value.parse()
}

impl Tool for DeployArgs {
    const NAME: &'static str = "baleine-deploy";
    const AFTER_DASHES: crate::framework::cli::AfterDashes =
        crate::framework::cli::AfterDashes::Command;

    fn run(self, command: Vec<String>) -> Result<ExitCode, UsageError> {
        let mut plan = DeployPlan::new(&self.image, self.options.as_deref(), command)?;
        plan.pull = self.pull;
        plan.stop_timeout = self.stop_timeout;
        plan.pin = !self.no_pin;
        plan.bootstrap = self.bootstrap.clone();
        if self.ready_cmd.is_some() && self.wait.is_none() {
            return Err(UsageError("--ready-cmd goes with --wait SECONDS".into()));
        }
        plan.wait = self.wait;
        plan.ready_cmd = self.ready_cmd.clone();
        let fleet = Fleet::prepare(self.fleet_options())?;
        Ok(run(&fleet, plan))
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
    pub stop_timeout: Option<u64>,
    /// Pin the other nodes to the first node's digest.
    pub pin: bool,
    /// Reload the nodes with this rhubarbe image first.
    pub bootstrap: Option<String>,
    /// Wait this many seconds at most for the container to be ready.
    pub wait: Option<u64>,
    /// What says the container is ready (default: health, else running).
    pub ready_cmd: Option<String>,
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
            wait: None,
            ready_cmd: None,
        })
    }
}

impl DeployPlan {
    /// The plan with `{node}` and `{index}` in options and command replaced
    /// by this node's values (see `nodes::expand_placeholders`).
    fn for_node(&self, node: &str) -> Result<DeployPlan, Failure> {
        let expand = |words: &[String]| -> Result<Vec<String>, Failure> {
            words
                .iter()
                .map(|w| expand_placeholders(w, node).map_err(|e| Failure::new(Stage::Input, e)))
                .collect()
        };
        Ok(DeployPlan {
            options: expand(&self.options)?,
            command: expand(&self.command)?,
            ..self.clone()
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
    let image = pinned.unwrap_or(&plan.image).to_string();
    // The image is on the node before the running container is touched: a
    // typo in the image name, or an unreachable registry, must not leave
    // the node without its experiment.
    script.stage(Stage::Pull);
    let present = quote(&docker.words(&["image", "inspect", &image]));
    // Progress goes to stdout, errors to stderr.
    let pull = quote(&docker.words(&["pull", &image]));
    let kept = quote_word(KEPT);
    match (plan.pull, pinned) {
        (PullPolicy::Never, _) => script.line(&format!(
            "{present} >/dev/null 2>&1 || {{ echo {} >&2; echo {kept} >&2; exit 1; }}",
            quote_word(&format!(
                "{image} is not on this node, and --pull never forbids pulling it"
            ))
        )),
        // A digest cannot change, so a pinned image present on the node
        // needs no registry round trip: `missing` is `always` for digests.
        (_, Some(_)) | (PullPolicy::Missing, None) => script.line(&format!(
            "{present} >/dev/null 2>&1 || {pull} >/dev/null || {{ echo {kept} >&2; exit 1; }}"
        )),
        (PullPolicy::Always, None) => script.line(&format!(
            "{pull} >/dev/null || {{ echo {kept} >&2; exit 1; }}"
        )),
    };
    if pinned.is_none() {
        // The digest, read once, as soon as the image is here: the other
        // nodes start on it (the early line, see DeployJob::start) while
        // this one goes on, and the record takes it from stdout.
        script.stage(Stage::Inspect);
        let digests = quote(&docker.words(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ]));
        script.line(&format!(
            "digests=$({digests}) || exit 1\n\
             echo \"{EARLY_MARK}digests=$digests\" >&2\n\
             echo \"digests=$digests\""
        ));
    }
    docker.remove_managed(&mut script, plan.stop_timeout);
    let mut run: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        docker.container.clone(),
        // Pulled above: run never pulls, so it never fails for the registry.
        "--pull=never".into(),
    ];
    run.extend(run_options.iter().cloned());
    run.extend(plan.options.iter().cloned());
    run.push(image.clone());
    run.extend(plan.command.iter().cloned());
    docker.run_container(&mut script, &run, &image);
    // A container that is already gone (a command that fails at once) is a
    // failed deploy, with its status and last words, not `ok`.
    let state = quote(&docker.words(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        &docker.container,
    ]));
    // `last`: the container's last lines on stderr, indented, for every
    // failure from here on (the readiness loop's too).
    let logs = quote(&docker.words(&["logs", "--tail", "5", &docker.container]));
    script.line(&format!(
        "last() {{ {logs} 2>&1 | sed 's/^/  /' >&2; }}\n\
         state=$({state} 2>/dev/null)\n\
         case $state in exited*|dead*) echo \"the container exited at once with status ${{state#* }}; its last lines:\" >&2; last; exit 1 ;; esac"
    ));
    if let Some(seconds) = plan.wait {
        wait_until_ready(&mut script, docker, seconds, plan.ready_cmd.as_deref());
    }
    script.text().to_owned()
}

/// How long a container without a HEALTHCHECK (and no --ready-cmd) must
/// keep running after its start to count as ready, in half seconds.
const SETTLE_HALF_SECONDS: u64 = 4;

/// The readiness loop (`--wait`): every half second, the container's state;
/// ready when healthy (HEALTHCHECK), or when `ready_cmd` succeeds in it, or
/// (neither) when it still runs after the settle time. A container that
/// exits, turns unhealthy or is not ready in time fails the node (stage
/// ready) with its last log lines (`last`, defined by `deploy_script`).
/// Prints `ready_ms=`.
fn wait_until_ready(script: &mut Script, docker: &Docker, seconds: u64, ready_cmd: Option<&str>) {
    script.stage(Stage::Ready);
    let state = quote(&docker.words(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
        &docker.container,
    ]));
    let probe = match ready_cmd {
        Some(command) => format!(
            "{} >/dev/null 2>&1 && break",
            quote(&docker.words(&["exec", &docker.container, "sh", "-c", command]))
        ),
        None => format!(
            "[ \"$3\" = healthy ] && break\n\
             [ \"$3\" = none ] && [ $i -ge {SETTLE_HALF_SECONDS} ] && break"
        ),
    };
    script.line(&format!(
        "i=0\n\
         while :; do\n\
         set -- $({state} 2>/dev/null)\n\
         case $1 in exited|dead) echo \"the container exited with status $2 before it was ready; its last lines:\" >&2; last; exit 1 ;; esac\n\
         [ \"$3\" = unhealthy ] && {{ echo 'the container is unhealthy; its last lines:' >&2; last; exit 1; }}\n\
         {probe}\n\
         i=$((i+1))\n\
         [ $i -lt {} ] || {{ echo 'not ready after {seconds} s; its last lines:' >&2; last; exit 1; }}\n\
         sleep 0.5\n\
         done\n\
         echo \"ready_ms=$((i * 500))\"",
        seconds * 2
    ));
}

/// Said after a failed pull: nothing was removed.
const KEPT: &str = "the running container, if any, was left as it was";

/// A deploy cut short (Ctrl-C, its time limit) says what the node runs now,
/// as far as the script got: before `remove`, the old container is there;
/// after it, it may be gone, and the new one may or may not run.
fn where_the_old_one_is(failure: Failure) -> Failure {
    if !matches!(failure.stage, Stage::Interrupted | Stage::Timeout) {
        return failure;
    }
    // Where the run was cut (remote::script::interpret); none: not started.
    let during = failure.fields.get("during").and_then(|d| d.as_str());
    let before_remove = matches!(during, None | Some("connect" | "pull" | "inspect"));
    let said = match before_remove {
        true => KEPT,
        false => "the old container may be gone and the new one not running yet: baleine-ps shows what runs there",
    };
    let Failure {
        stage,
        error,
        fields,
    } = failure;
    Failure {
        stage,
        error: format!("{error}\n{said}"),
        fields,
    }
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

    /// Whether another node is resolving the digest right now (a node
    /// starting now would wait for it).
    fn resolving(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            PinState::Resolving
        )
    }

    fn resolve(&self, image: Option<ImageRef>) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = PinState::Resolved(image);
        self.resolved.notify_all();
    }
}

/// Deploys `plan` on every node of `fleet`, one record per node.
pub fn run(fleet: &Fleet, plan: DeployPlan) -> ExitCode {
    let job = DeployJob {
        docker: Docker::from_config(&fleet.config),
        run_options: fleet.config.run_options(),
        pin: Arc::new(Pin::new(plan.pin && !fleet.dry_run)),
        plan,
        ssh: fleet.ssh.clone(),
        timeout: fleet.timeout,
        explain: PullExplainer {
            config: fleet.config.clone(),
            suggestion: OnceLock::new(),
        },
    };
    match &job.plan.bootstrap {
        None => fleet.run(&job),
        Some(ndz) => bootstrap_then_run(fleet, ndz, &job),
    }
}

/// One deploy over the fleet: the plan, and the digest the first node resolves.
struct DeployJob {
    plan: DeployPlan,
    docker: Docker,
    run_options: Vec<String>,
    pin: Arc<Pin>,
    explain: PullExplainer,
    /// To open a node's kept connection while it waits for the pin.
    ssh: Ssh,
    timeout: Duration,
}

/// Makes a failed pull's error say where the image was looked for, whether
/// it was not there or the registry could not be reached, and which saved
/// image the user may have meant.
struct PullExplainer {
    config: crate::domain::config::Config,
    /// The repo's image of the same name, looked up once per run.
    suggestion: OnceLock<Option<String>>,
}

impl PullExplainer {
    fn explain(&self, image: &ImageRef, failure: Failure) -> Failure {
        if failure.stage != Stage::Pull {
            return failure;
        }
        let lower = failure.error.to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        let verdict = if has(&[
            "not found",
            "manifest unknown",
            "does not exist",
            "name unknown",
        ]) {
            "not found"
        } else if has(&[
            "connection refused",
            "no such host",
            "timeout",
            "dial tcp",
            "unreachable",
            "eof",
        ]) {
            "unreachable"
        } else {
            return failure;
        };
        let mirror = format!("{}:81", self.config.save_url);
        let place = match &image.domain {
            Some(domain) => format!("registry {domain}"),
            None => format!("Docker Hub, through the nodes' mirror {mirror}"),
        };
        // A mirror that lacks the image sends the daemon on to Docker Hub:
        // the error is then the Hub's, which a closed network cannot reach.
        let hub_behind_mirror = image.domain.is_none() && lower.contains("registry-1.docker.io");
        let mut error = match (verdict, hub_behind_mirror) {
            ("not found", _) => format!("{image}: not found ({place})"),
            (_, true) => format!(
                "{image}: not on the nodes' mirror {mirror}, and Docker Hub itself unreachable"
            ),
            _ => format!("{image}: registry unreachable ({place})"),
        };
        if verdict == "not found" || hub_behind_mirror {
            if let Some(saved) = self.saved_image_like(image) {
                error += &format!("; did you mean {saved}?");
            }
        }
        let Failure {
            stage,
            error: docker_error,
            fields,
        } = failure;
        Failure {
            stage,
            error: format!("{error}\n{docker_error}"),
            fields,
        }
    }

    /// `SAVE_URL/NAME:TAG` when the repo has NAME:TAG of a Hub-looking name.
    fn saved_image_like(&self, image: &ImageRef) -> Option<String> {
        if image.domain.is_some() {
            return None;
        }
        self.suggestion
            .get_or_init(|| {
                let registry = crate::remote::registry::Registry::from_config_with_timeout(
                    &self.config,
                    Duration::from_secs(5),
                );
                let tag = image.tag.clone().unwrap_or_else(|| "latest".into());
                let name = image.path.strip_prefix("library/").unwrap_or(&image.path);
                match registry.manifest_digest(name, &tag) {
                    Ok(Some(_)) => Some(target_image(
                        &self.config.save_url,
                        self.config.save_port,
                        name,
                        &tag,
                    )),
                    _ => None,
                }
            })
            .clone()
    }
}

/// What a node's deploy started from: the duty of resolving the digest for
/// the others (first node only), the pinned image it runs otherwise, and
/// its command with the node's own values.
struct Started {
    /// Taken by the first node's early digest line, or else by `finish`.
    first: Option<Arc<Mutex<Option<Resolver>>>>,
    pinned: Option<ImageRef>,
    command: Vec<String>,
}

/// The first node's duty to resolve the pin. Dropped undone (the node's
/// work panicked), it resolves to "no pin", so the others never wait for ever.
struct Resolver {
    pin: Arc<Pin>,
}

impl Resolver {
    fn resolve(self, image: Option<ImageRef>) {
        self.pin.resolve(image);
        crate::framework::output::set_note(None);
        std::mem::forget(self);
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.pin.resolve(None);
        crate::framework::output::set_note(None);
    }
}

impl Job for DeployJob {
    type Context = Started;

    fn action(&self) -> &'static str {
        "deploy"
    }

    /// Nothing was done on the node: its old container runs on.
    fn not_started(&self) -> Failure {
        where_the_old_one_is(Failure::not_started())
    }

    fn start(&self, node: &NodeName, _: Option<&Request>) -> Result<Remote<Started>, Failure> {
        // While the first node pulls, the others open their connection
        // (when connections are kept): their session then starts at once.
        // Their old container stays until the image is known to exist.
        if self.pin.resolving() {
            // Unreachable: say so now, not after a second try.
            self.ssh
                .connect(node, self.timeout)
                .map_err(|complaint| Failure::new(Stage::Connect, complaint))?;
        }
        let (first, pinned) = match self.pin.role() {
            Role::Stopped => return Err(self.not_started()),
            Role::First => {
                crate::framework::output::set_note(Some(format!(
                    "{node} pulls and resolves the digest, the others wait"
                )));
                let resolver = Resolver {
                    pin: self.pin.clone(),
                };
                (Some(resolver), None)
            }
            Role::Follow(image) => (None, image),
        };
        let plan = self.plan.for_node(node)?;
        let script = deploy_script(&plan, &self.docker, &self.run_options, pinned.as_ref());
        let command = plan.command;
        let first = first.map(|resolver| Arc::new(Mutex::new(Some(resolver))));
        let mut remote = Remote::new(
            script,
            Started {
                first: first.clone(),
                pinned,
                command,
            },
        );
        if let Some(first) = first {
            // The digest as soon as the first node has the image.
            let image = self.plan.image.clone();
            remote.io.early = Some(LineFeed(Arc::new(move |line: &str| {
                let Some(digests) = line.strip_prefix("digests=") else {
                    return;
                };
                let Some(pinned) =
                    repo_digest(&image, digests).and_then(|d| image.with_digest(&d).ok())
                else {
                    return;
                };
                if let Some(resolver) = first.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    resolver.resolve(Some(pinned));
                }
            })));
        }
        Ok(remote)
    }

    fn finish(&self, _: &NodeName, started: Started, session: &Session) -> Result<Fields, Failure> {
        let result = session.values();
        let digest = match (&result, &started.pinned) {
            (_, Some(image)) => image.digest.clone(),
            (Ok(values), None) => values
                .get("digests")
                .and_then(|d| repo_digest(&self.plan.image, d)),
            (Err(_), None) => None,
        };
        let resolver = started
            .first
            .and_then(|first| first.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(resolver) = resolver {
            // A failed first node leaves the others unpinned rather than stuck.
            let image = digest
                .as_ref()
                .and_then(|d| self.plan.image.with_digest(d).ok());
            resolver.resolve(image);
        }
        let image = self.plan.image.to_string();
        let values = result.map_err(|failure| {
            self.explain
                .explain(&self.plan.image, where_the_old_one_is(failure))
                .with("image", image.as_str())
        })?;
        let fields = Fields::new()
            .with("image", image)
            .with("digest", digest)
            .with("container", values.get("container").cloned())
            .with("pinned", started.pinned.is_some())
            .with("command", started.command)
            .with("replaced", values.get("removed").map(|r| r == "true"));
        // With --wait, the record says the container was ready, and when.
        let readiness = match self.plan.wait {
            Some(_) => Fields::new().with("ready", true).with(
                "ready_ms",
                values.get("ready_ms").and_then(|ms| ms.parse::<u64>().ok()),
            ),
            None => Fields::new(),
        };
        Ok(fields.and(readiness))
    }
}

/// `--bootstrap`: reload every node with `rhubarbe load`, wait for them with
/// `rhubarbe wait`, then deploy on those that came back. This needs the whole
/// node list first, so input is collected before anything starts.
fn bootstrap_then_run(fleet: &Fleet, ndz: &str, job: &DeployJob) -> ExitCode {
    let inputs = fleet.all_inputs(None);
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
    fleet.run_inputs(job, &replay(remaining), settled)
}

/// Runs rhubarbe load and wait; returns the nodes that did not come back, with why.
fn bootstrap(fleet: &Fleet, ndz: &str, nodes: &[String]) -> Vec<(String, String)> {
    let ndz = if ndz == "default" {
        fleet.config.default_bootstrap_image.clone()
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

    #[test]
    fn a_deploy_cut_short_says_whether_the_old_container_is_still_there() {
        let cut = |during: &str| {
            where_the_old_one_is(Failure::new(Stage::Interrupted, "x").with("during", during)).error
        };
        assert!(cut("pull").ends_with(KEPT));
        assert!(cut("run").contains("may be gone"));
        assert!(where_the_old_one_is(Failure::not_started())
            .error
            .ends_with(KEPT));
        let timeout = Failure::new(Stage::Timeout, "x").with("during", "remove");
        assert!(where_the_old_one_is(timeout).error.contains("may be gone"));
        let other = Failure::new(Stage::Pull, "x").with("during", "pull");
        assert_eq!(where_the_old_one_is(other.clone()), other);
    }

    fn docker() -> Docker {
        Docker::default()
    }

    /// The explainer of a run whose repo has no image like the failed one
    /// (looked up already: no network here).
    fn explainer() -> PullExplainer {
        let config = crate::domain::config::from_text(
            std::path::Path::new("baleine.conf"),
            "SAVE_URL = faraday.repo\n",
        )
        .unwrap();
        let suggestion = OnceLock::new();
        let _ = suggestion.set(None);
        PullExplainer { config, suggestion }
    }

    fn explained(image: &str, docker_error: &str) -> String {
        let image = ImageRef::parse(image).unwrap();
        let failure = Failure::new(Stage::Pull, docker_error);
        explainer().explain(&image, failure).error
    }

    #[test]
    fn a_pull_failure_says_not_found_or_unreachable_and_where() {
        let typo = explained(
            "busybx",
            "Error response from daemon: pull access denied for busybx, repository does not exist",
        );
        assert!(
            typo.starts_with(
                "busybx: not found (Docker Hub, through the nodes' mirror faraday.repo:81)"
            ),
            "{typo}"
        );
        let down = explained(
            "faraday.repo/exp:v1",
            "Get \"http://faraday.repo/v2/\": dial tcp 10.0.0.1:80: connect: connection refused",
        );
        assert!(
            down.starts_with("faraday.repo/exp:v1: registry unreachable (registry faraday.repo)"),
            "{down}"
        );
        let closed = explained(
            "busybox:1.36",
            "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host",
        );
        assert!(
            closed.starts_with(
                "busybox:1.36: not on the nodes' mirror faraday.repo:81, and Docker Hub itself unreachable"
            ),
            "{closed}"
        );
        // docker's own words follow, whole.
        assert!(closed.ends_with("no such host"), "{closed}");
        // Anything else is docker's words alone.
        assert_eq!(
            explained("busybox", "no space left on device"),
            "no space left on device"
        );
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
        assert!(script.contains("docker pull busybox >/dev/null || {"));
        assert!(script.contains("docker run -d --name container '--pull=never' '--network=host' -e 'MSG=hello world' busybox sh -c 'echo $MSG; id'"));
        assert!(script.contains("{{json .RepoDigests}}"));
        // The image is there before the running container is removed.
        assert!(script.find("docker pull").unwrap() < script.find("docker rm -f").unwrap());
    }

    #[test]
    fn pinned_nodes_pull_the_digest_only_if_missing_and_skip_the_inspect() {
        let plan = DeployPlan::new("busybox", None, vec![]).unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = plan.image.with_digest(&digest).unwrap();
        let script = deploy_script(&plan, &docker(), &[], Some(&pinned));
        // Pulled only if missing, and before the old container goes.
        assert!(script.contains(&format!(
            "docker image inspect busybox@{digest} >/dev/null 2>&1 || docker pull busybox@{digest}"
        )));
        assert!(script.find("docker pull").unwrap() < script.find("docker rm -f").unwrap());
        assert!(script.contains(&format!("'--pull=never' busybox@{digest}")));
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
}
