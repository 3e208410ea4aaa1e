//! baleine-deploy's job: run one image as the managed container on many nodes, all on the same bits.
//!
//! The first node deploys alone and resolves the image's digest (warming the
//! mirror on the way); every other node then runs `IMAGE@sha256:…`, so a tag
//! that moves mid-deploy cannot give two nodes different images.

use crate::domain::labels::LABEL_PREFIX as LABEL;
use crate::domain::nodes::expand_placeholders;
use crate::domain::nodes::NodeName;
use crate::domain::record::{Failure, Fields, Record, Stage};
use crate::domain::reference::{repo_digest, short_name, target_image, ImageRef, PullPolicy};
use crate::domain::stop;
use crate::framework::cli::Tool;
use crate::framework::fleet::{Fleet, Job, Remote, Session};
use crate::framework::input::{replay, Input, Request, RequestCheck};
use crate::framework::table::{self, Cell, Column};
use crate::framework::UsageError;
use crate::remote::protocol::{EARLY_MARK, RESTAGE_MARK};
use crate::remote::quote::{quote, quote_word};
use crate::remote::script::{Docker, Script};
use crate::remote::ssh::{LineFeed, StdinGate};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

crate::fleet_args! {
    /// Run IMAGE as the managed container on each node: pull it, then replace
    /// the previous container with it, and print one JSON record per node. A
    /// failed pull leaves the previous container running; a container that
    /// exits at once is a failure, with its status and last lines. The first
    /// node resolves the image digest, checked with the registry where the
    /// gateway reaches it; the others run that exact digest.
    #[argh(
        example = "rhubarbe nodes 1-5 | baleine-deploy -i busybox -- sleep infinity",
        example = "baleine-deploy -i faraday.repo/myexp:v2 --options \"-e 'MSG=hello world'\" 1-10 ~7",
        example = "jq -c 'select(.ok | not)' ~/.local/state/baleine/latest-deploy.jsonl | baleine-deploy",
        note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
                else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
                A stdin record is also its node's request: its image, digest, options (a list, or one \
                string), command (a list), wait and ready_cmd fields, named as deploy's own records name \
                them, override the command line for that node (other fields are ignored), so that a \
                deploy's records, or baleine-ps's, fed back run the same again; a bad field is exit 2 \
                naming the line and the field. Nodes are grouped by image, each group pinned to the \
                digest its first node resolves, or to a record's digest. The previous container is \
                kept, stopped, until the new one holds, and is back as it was if it does not. \
                Words after -- are the container's command. In the command and --options, {{node}} and {{index}} \
                become each node's name and number (fit07, 7); {{{{ and }}}} are braces.",
        error_code(1, "some node failed (its record says where and why)"),
        error_code(2, "usage, configuration or node-list error; nothing was done"),
        error_code(130, "interrupted; every node still got a record"),
        error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
    )]
    pub struct DeployArgs {
        timeout: (600, "give up on a node after this long: seconds, or 90s, 5m, 1h30m (default: 600)"),
        /// image to run (Docker reference: busybox, faraday.repo/name:tag,
        /// name@sha256:...); optional when every stdin record names its image
        #[argh(option, arg_name = "IMAGE", short = 'i')]
        pub image: Option<String>,
        /// extra docker run options, split like a shell would ("-e 'MSG=hello world'")
        #[argh(option, arg_name = "OPTIONS")]
        pub options: Option<String>,
        /// when to pull: always (default), missing or never
        #[argh(option, arg_name = "POLICY", default = "PullPolicy::Always", from_str_fn(pull_policy))]
        pub pull: PullPolicy,
        /// reload the nodes with this rhubarbe image first ("default" for DEFAULT_BOOTSTRAP_IMAGE)
        #[argh(option, arg_name = "IMAGE")]
        pub bootstrap: Option<String>,
        /// stop the old container gracefully, waiting up to this long: seconds, or 90s, 5m (default: remove at once)
        #[argh(option, arg_name = "DURATION", from_str_fn(crate::framework::args::seconds))]
        pub stop_timeout: Option<u64>,
        /// do not pin the other nodes to the digest the first node resolved
        #[argh(switch)]
        pub no_pin: bool,
        /// give each node's record only once its container is ready, waiting up
        /// to this long (90, 90s, 5m): healthy if the image has a HEALTHCHECK, else
        /// still running 2 s after it started, or --ready-cmd succeeding
        #[argh(option, arg_name = "DURATION", from_str_fn(crate::framework::args::seconds))]
        pub wait: Option<u64>,
        /// with --wait: a command run in the container (sh -c) whose success means ready
        #[argh(option, arg_name = "COMMAND")]
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

    fn run(self, command: Vec<std::ffi::OsString>) -> Result<ExitCode, UsageError> {
        let command = crate::framework::cli::command_words(command);
        let mut plan = DeployPlan::new(self.image.as_deref(), self.options.as_deref(), command)?;
        plan.pull = self.pull;
        plan.stop_timeout = self.stop_timeout;
        plan.pin = !self.no_pin;
        plan.bootstrap = self.bootstrap.clone();
        if self.ready_cmd.is_some() && self.wait.is_none() {
            return Err(UsageError("--ready-cmd goes with --wait SECONDS".into()));
        }
        plan.wait = self.wait;
        plan.ready_cmd = self.ready_cmd.clone();
        let fleet = Fleet::prepare(crate::framework::args::FleetOptions {
            takes_command: true,
            ..self.fleet_options()
        })?;
        if let Err(problem) = wait_within(plan.wait, fleet.timeout) {
            return Err(UsageError(format!("--{problem}")));
        }
        // Only stdin records can name an image of their own.
        if plan.image.is_none() && !fleet.streamed() {
            return Err(UsageError(
                "give the image to run with -i IMAGE (or records naming theirs on stdin)".into(),
            ));
        }
        Ok(run(&fleet, plan))
    }
}

/// What a deploy runs: the command line's defaults, and for one node,
/// those with its stdin record's request over them (see `requested`).
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// The image as the user named it (reported as `image`); none when
    /// every stdin record names its own.
    pub image: Option<ImageRef>,
    /// The digest a request pins its node to (a record of ours fed back):
    /// no resolution by a first node.
    pub digest: Option<String>,
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
        image: Option<&str>,
        options: Option<&str>,
        command: Vec<String>,
    ) -> Result<DeployPlan, UsageError> {
        let image = image
            .map(ImageRef::parse)
            .transpose()
            .map_err(|e| UsageError(e.to_string()))?;
        let options = match options {
            Some(text) => shell_words::split(text)
                .map_err(|e| UsageError(format!("--options {text:?}: {e}")))?,
            None => Vec::new(),
        };
        Ok(DeployPlan {
            image,
            digest: None,
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
    pub fn for_node(&self, node: &str) -> Result<DeployPlan, Failure> {
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

/// The most a request's text field may hold (an image name, one option or
/// command word): a record is data from anywhere, and every word goes into
/// an ssh command line.
const MAX_FIELD: usize = 64 * 1024;
/// The most words a request's options or command may have.
const MAX_WORDS: usize = 1024;

impl DeployPlan {
    /// The plan for one node: this one, with the fields of its stdin
    /// record's request over it (named as deploy's own records name them:
    /// image, digest, options, command, wait, ready_cmd; others ignored).
    /// The problem names the field. The node's image is known after it.
    pub fn requested(&self, request: Option<&Request>) -> Result<DeployPlan, String> {
        let mut plan = self.clone();
        let fields = request.map(|r| &r.fields);
        let field = |name: &str| fields.and_then(|f| f.get(name)).filter(|v| !v.is_null());
        if let Some(value) = field("image") {
            let text = text_field("image", value)?;
            plan.image = Some(ImageRef::parse(text).map_err(|e| format!("field image: {e}"))?);
            // A record's image comes with its own digest, or none.
            plan.digest = None;
        }
        let Some(image) = plan.image.clone() else {
            return Err("no image: give -i IMAGE, or an \"image\" field".into());
        };
        if let Some(value) = field("digest") {
            plan.digest = Some(digest_of(&image, text_field("digest", value)?)?);
        }
        if let Some(value) = field("options") {
            plan.options = match value {
                serde_json::Value::String(text) => {
                    bounded("options", text)?;
                    shell_words::split(text).map_err(|e| format!("field options: {e}"))?
                }
                _ => words_field("options", value)?,
            };
        }
        if let Some(value) = field("command") {
            plan.command = words_field("command", value)?;
        }
        if let Some(value) = field("wait") {
            plan.wait = Some(match value {
                serde_json::Value::Number(n) => n
                    .as_u64()
                    .filter(|s| *s <= crate::framework::args::MAX_SECONDS)
                    .ok_or("field wait: a number of seconds (at most 30 days)")?,
                other => crate::framework::args::seconds(text_field("wait", other)?)
                    .map_err(|e| format!("field wait: {e}"))?,
            });
        }
        if let Some(value) = field("ready_cmd") {
            plan.ready_cmd = Some(text_field("ready_cmd", value)?.to_owned());
        }
        if plan.ready_cmd.is_some() && plan.wait.is_none() {
            return Err("field ready_cmd goes with wait".into());
        }
        Ok(plan)
    }
}

/// `--wait` must end before the node's own timer (`--timeout`) stops the
/// deploy: cut there, the previous container would stay aside.
fn wait_within(wait: Option<u64>, timeout: Duration) -> Result<(), String> {
    match wait {
        Some(seconds) if Duration::from_secs(seconds) >= timeout => Err(format!(
            "wait {seconds} s is not less than the --timeout of {} s: the node's own timer \
             would stop the deploy before it was ready",
            timeout.as_secs()
        )),
        _ => Ok(()),
    }
}

/// Words as a record or a label keeps them: braces doubled, as on the
/// command line, so that fed back to a deploy ({node} and {index} filled in
/// again) they are exactly the words this node ran.
fn as_asked(words: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|w| w.replace('{', "{{").replace('}', "}}"))
        .collect()
}

/// A request's text field, bounded.
fn text_field<'a>(name: &str, value: &'a serde_json::Value) -> Result<&'a str, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("field {name}: a string, not {}", kind_of(value)))?;
    bounded(name, text)?;
    Ok(text)
}

fn bounded(name: &str, text: &str) -> Result<(), String> {
    match text.len() > MAX_FIELD {
        true => Err(format!("field {name}: longer than {MAX_FIELD} bytes")),
        false => Ok(()),
    }
}

/// A request's list of words (options, command), bounded.
fn words_field(name: &str, value: &serde_json::Value) -> Result<Vec<String>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("field {name}: a list of strings, not {}", kind_of(value)))?;
    if list.len() > MAX_WORDS {
        return Err(format!("field {name}: more than {MAX_WORDS} words"));
    }
    list.iter()
        .map(|word| text_field(name, word).map(String::from))
        .collect()
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A request's digest: `sha256:…`, or `REPOSITORY@sha256:…`, which must name
/// the image's own repository (as Docker names it, `docker.io/library/`
/// left out): a record cannot pin a node to another repository's image.
fn digest_of(image: &ImageRef, text: &str) -> Result<String, String> {
    let (named, digest) = match text.split_once('@') {
        Some((repository, digest)) => (Some(repository), digest),
        None => (None, text),
    };
    image
        .with_digest(digest)
        .map_err(|e| format!("field digest: {e}"))?;
    if let Some(named) = named {
        if short_name(named) != short_name(&image.repository()) {
            return Err(format!(
                "field digest: {text:?} is of repository {named}, not of the image {image}"
            ));
        }
    }
    if let Some(own) = &image.digest {
        if own != digest {
            return Err(format!(
                "field digest: {digest} is not the digest the image {image} names"
            ));
        }
    }
    Ok(digest.to_owned())
}

/// Who deploys, in which run: labels on every container of the run.
#[derive(Debug, Clone)]
pub struct RunLabels {
    pub user: String,
    pub run: String,
}

/// The remote script deploying on one node: pull (unless pinned and
/// present), resolve the digest (first node), keep the previous container
/// aside (stopped), run the new one, and put the previous one back if the
/// new one does not hold (exits at once, never ready); once it holds, the
/// previous one goes.
pub fn deploy_script(
    plan: &DeployPlan,
    docker: &Docker,
    run_options: &[String],
    pinned: Option<&ImageRef>,
    labels: &RunLabels,
) -> String {
    let pinning = match pinned {
        Some(image) => Pinning::Pinned(image),
        None => Pinning::Resolve,
    };
    script_with(plan, docker, run_options, pinning, labels)
}

/// A follower's script started before its group's first node has the
/// digest: it waits for its pin on stdin (see [`await_pin`]), its key
/// exchange and login done meanwhile.
pub fn deploy_script_awaiting_pin(
    plan: &DeployPlan,
    docker: &Docker,
    run_options: &[String],
    labels: &RunLabels,
) -> String {
    script_with(plan, docker, run_options, Pinning::Awaited, labels)
}

/// Where a node's image digest comes from.
enum Pinning<'a> {
    /// Its own pull (a first node, or unpinned).
    Resolve,
    /// Known when its session starts.
    Pinned(&'a ImageRef),
    /// Written on its stdin once its group's first node has it.
    Awaited,
}

/// What the gateway writes to a waiting follower: the digest, `unpinned`
/// (the first node failed: pull the tag), or anything else to stop.
pub const UNPINNED: &str = "unpinned";

fn script_with(
    plan: &DeployPlan,
    docker: &Docker,
    run_options: &[String],
    pinning: Pinning,
    labels: &RunLabels,
) -> String {
    let asked = plan.image.as_ref().expect("a node's plan names its image");
    let mut script = Script::new();
    // The image as the shell gets it: a quoted word, or `$image` when the
    // pin arrives while the script runs.
    let image_word = match pinning {
        Pinning::Pinned(pinned) => {
            let image = pinned.to_string();
            pull(
                &mut script,
                plan.pull,
                docker,
                (&quote_word(&image), &image),
                true,
            );
            if let Some(digest) = pinned.digest.as_deref() {
                script.line(&format!("digest={}", quote_word(digest)));
            }
            quote_word(&image)
        }
        Pinning::Resolve => {
            let image = asked.to_string();
            pull(
                &mut script,
                plan.pull,
                docker,
                (&quote_word(&image), &image),
                false,
            );
            resolve_digest(&mut script, docker, &image, asked);
            quote_word(&image)
        }
        Pinning::Awaited => {
            await_pin(&mut script, plan, docker, asked);
            "\"$image\"".to_owned()
        }
    };
    keep_previous(&mut script, docker, plan.stop_timeout);
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
    let json = |words: &[String]| serde_json::to_string(words).unwrap_or_default();
    for (key, value) in [
        ("image", asked.to_string()),
        ("options", json(&as_asked(&plan.options))),
        ("command", json(&as_asked(&plan.command))),
        ("user", labels.user.clone()),
        ("run", labels.run.clone()),
        ("version", crate::framework::cli::VERSION.to_owned()),
    ] {
        run.extend(["--label".into(), format!("{LABEL}.{key}={value}")]);
    }
    script.stage(Stage::Run);
    let inspect = format!(
        "{} {image_word}",
        quote(&docker.words(&["image", "inspect"]))
    );
    let mut words = quote(&docker.words(&run));
    // The digest is the shell's (resolved on the node by the first one).
    words += &format!(" --label \"{LABEL}.digest=$digest\" ");
    words += &image_word;
    if !plan.command.is_empty() {
        words += " ";
        words += &quote(&plan.command);
    }
    script.line(&format!(
        "id=$({words}) || {{ {inspect} >/dev/null 2>&1 || echo '{RESTAGE_MARK}pull' >&2; restore; exit 1; }}\n\
         echo \"container=$id\""
    ));
    held_or_restored(&mut script, docker);
    if let Some(seconds) = plan.wait {
        wait_until_ready(&mut script, docker, seconds, plan.ready_cmd.as_deref());
    }
    // It holds: the previous container goes.
    let previous = quote(&docker.words(&["rm", "-f", &docker.previous()]));
    script.line(&format!(
        "[ -z \"$had\" ] || {previous} >/dev/null 2>&1\necho removed=${{had:-false}}"
    ));
    script.text().to_owned()
}

/// A follower's wait for its pin: one line on stdin, written by the gateway
/// when its group's first node has the digest (checked). The digest: pull
/// it unless present; `unpinned`: pull the tag and resolve, as a first
/// node; anything else (the run stopped, the digest refused), or our end
/// closed: stop here, the old container untouched. Sets `image` and
/// `digest`.
fn await_pin(script: &mut Script, plan: &DeployPlan, docker: &Docker, asked: &ImageRef) {
    // The digest's form, `busybox@` or `busybox:latest@`, as a pinned
    // ImageRef prints it.
    let example = format!("sha256:{}", "0".repeat(64));
    let at = asked
        .with_digest(&example)
        .map(|pinned| pinned.to_string())
        .unwrap_or_default();
    let prefix = at.strip_suffix(&example).unwrap_or(&at);
    let tag = asked.to_string();
    script.line(&format!(
        "echo {EARLY_MARK}awaiting=pin >&2\n\
         IFS= read -r pin || pin=\n\
         case $pin in\n\
         sha256:*[!0-9a-f]*|sha384:*[!0-9a-f]*|sha512:*[!0-9a-f]*) pin= ;;\n\
         sha256:?*|sha384:?*|sha512:?*) ;;\n\
         {UNPINNED}) ;;\n\
         *) pin= ;;\n\
         esac\n\
         [ -n \"$pin\" ] || {{ echo {} >&2; exit 3; }}\n\
         if [ \"$pin\" = {UNPINNED} ]; then\n\
         image={}",
        quote_word(&format!(
            "not started: its group's digest never came\n{KEPT}"
        )),
        quote_word(&tag),
    ));
    pull(script, plan.pull, docker, (&quote_word(&tag), &tag), false);
    resolve_digest(script, docker, &tag, asked);
    script.line(&format!(
        "else\n\
         image={}\"$pin\"\n\
         digest=$pin",
        quote_word(prefix)
    ));
    pull(script, plan.pull, docker, ("\"$image\"", &tag), true);
    script.line("fi");
}

/// The image on the node before the running container is touched: a typo
/// in the image name, or an unreachable registry, must not leave the node
/// without its experiment.
/// `image` is the shell's word for it (quoted, or `"$image"` when the pin
/// arrives while the script runs); `shown`, the image as the user reads it.
fn pull(
    script: &mut Script,
    policy: PullPolicy,
    docker: &Docker,
    (image, shown): (&str, &str),
    pinned: bool,
) {
    script.stage(Stage::Pull);
    let present = format!("{} {image}", quote(&docker.words(&["image", "inspect"])));
    // Progress goes to stdout, errors to stderr.
    let pull = format!("{} {image}", quote(&docker.words(&["pull"])));
    let kept = quote_word(KEPT);
    // What the pull said (its `Digest:` line spares the first node an
    // inspect, see resolve_digest).
    script.line("pulled=");
    match (policy, pinned) {
        (PullPolicy::Never, _) => script.line(&format!(
            "{present} >/dev/null 2>&1 || {{ echo {} >&2; echo {kept} >&2; exit 1; }}",
            quote_word(&format!(
                "{shown} is not on this node, and --pull never forbids pulling it"
            ))
        )),
        // A digest cannot change, so a pinned image present on the node
        // needs no registry round trip: `missing` is `always` for digests.
        (_, true) | (PullPolicy::Missing, false) => script.line(&format!(
            "{present} >/dev/null 2>&1 || pulled=$({pull}) || {{ echo {kept} >&2; exit 1; }}"
        )),
        (PullPolicy::Always, false) => script.line(&format!(
            "pulled=$({pull}) || {{ echo {kept} >&2; exit 1; }}"
        )),
    };
}

/// The first node: the image's digests, read once, as soon as the image is
/// here: the other nodes start on them (the early line, see
/// DeployJob::start) while this one goes on, and the record takes them
/// from stdout; `$digest`, the one of the image's own repository, labels
/// the container.
fn resolve_digest(script: &mut Script, docker: &Docker, image: &str, asked: &ImageRef) {
    script.stage(Stage::Inspect);
    let digests = quote(&docker.words(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        image,
    ]));
    let wanted = quote_word(&short_name(&asked.repository()));
    // `docker pull` says the digest it pulled: the image's own
    // repository's, for the name asked. Only a pull that did not happen
    // (already there) costs an inspect.
    let listed = quote_word(&format!("[\"{}@", short_name(&asked.repository())));
    script.line(&format!(
        "digest=\n\
         while IFS= read -r l; do case $l in 'Digest: sha256:'*) digest=${{l#Digest: }} ;; esac; done <<EOF\n\
         $pulled\n\
         EOF\n\
         if [ -n \"$digest\" ]; then digests={listed}\"$digest\"'\"]'; echo \"{EARLY_MARK}pulled=yes\" >&2; echo pulled=yes\n\
         else digests=$({digests}) || exit 1; fi\n\
         echo \"{EARLY_MARK}digests=$digests\" >&2\n\
         echo \"digests=$digests\"\n\
         digest=\n\
         for d in $(printf '%s' \"$digests\" | tr -d '[]\"' | tr ',' ' '); do\n\
         n=${{d%@*}}; n=${{n#docker.io/}}; n=${{n#library/}}\n\
         [ \"$n\" = {wanted} ] && digest=${{d#*@}}\n\
         done"
    ));
}

/// The managed container, if any, is stopped and kept aside (renamed), not
/// removed: `restore` puts it back, as it was (running or not), if the new
/// one does not hold. A container kept aside by a deploy that was cut is
/// dealt with first: dropped if the managed one runs (the new one held),
/// else the managed one again (the new one never held, or is gone). Prints
/// what it replaced (`previous_image`, `previous_digest`, from its labels).
fn keep_previous(script: &mut Script, docker: &Docker, stop_timeout: Option<u64>) {
    script.stage(Stage::Remove);
    let (name, previous) = (&docker.container, docker.previous());
    // One line per container: its name and state, then its image and our
    // two labels as JSON strings, so that no text of a label (a newline, a
    // `|`) can pass for another field or another container.
    let format = format!(
        "{{{{.Name}}}}|{{{{.State.Status}}}}|{{{{json .Config.Image}}}} \
         {{{{json (index .Config.Labels \"{LABEL}.image\")}}}} \
         {{{{json (index .Config.Labels \"{LABEL}.digest\")}}}}"
    );
    let d = |args: &[&str]| quote(&docker.words(args));
    // `container inspect`, not `inspect`: a name that is not there costs
    // no search through every kind of object (and the daemon's info).
    let inspect = d(&["container", "inspect", "--format", &format, name, &previous]);
    // The line of one name exactly (its first field).
    let line_of = |of: &str| format!("{}*", quote_word(&format!("/{of}|")));
    let (line_managed, line_kept) = (line_of(name), line_of(&previous));
    let drop_previous = d(&["rm", "-f", &previous]);
    let drop_managed = d(&["rm", "-f", name]);
    let rename_back = d(&["rename", &previous, name]);
    let stop = d(&["stop", "-t", &stop_timeout.unwrap_or(0).to_string(), name]);
    let aside = d(&["rename", name, &previous]);
    let start = d(&["start", name]);
    // Parsed by the shell alone: no awk or cut to start on the node.
    script.line(&format!(
        "old=$({inspect} 2>/dev/null)\n\
         managed= kept=\n\
         while IFS= read -r l; do case $l in {line_managed}) managed=$l ;; {line_kept}) kept=$l ;; esac; done <<EOF\n\
         $old\n\
         EOF\n\
         state_of() {{ s=${{1#*|}}; printf '%s' \"${{s%%|*}}\"; }}\n\
         if [ -n \"$kept\" ]; then\n\
         case $(state_of \"$managed\") in\n\
         running) {drop_previous} >/dev/null 2>&1 ;;\n\
         '') {rename_back} || exit 1; managed=$kept ;;\n\
         *) {{ {drop_managed} >/dev/null 2>&1 && {rename_back}; }} || exit 1; managed=$kept ;;\n\
         esac\n\
         fi\n\
         had= pstate=\n\
         if [ -n \"$managed\" ]; then\n\
         had=true\n\
         pstate=$(state_of \"$managed\")\n\
         printf 'previous=%s\\n' \"$managed\"\n\
         [ -z \"$BALEINE_STAGE\" ] || echo \"$pstate\" >\"$BALEINE_STAGE.previous\" 2>/dev/null\n\
         {stop} >/dev/null 2>&1\n\
         out=$({aside} 2>&1) || {{ [ \"$pstate\" != running ] || {start} >/dev/null 2>&1; printf '%s\\n' \"$out\" >&2; exit 1; }}\n\
         fi\n\
         restore() {{ [ -n \"$had\" ] || return 0; {drop_managed} >/dev/null 2>&1; \
         {rename_back} >/dev/null || return 0; [ \"$pstate\" != running ] || {start} >/dev/null; \
         echo restored_previous=true; }}"
    ));
}

/// What a deploy cut after setting the previous container aside leaves put
/// right, once the run's processes are stopped on the node: the new
/// container if it runs, else the previous one back, started if it ran
/// (`restored_previous=true`). Run by the cleanup of a cut session.
fn put_back(docker: &Docker, tag: &str, node: &str) -> String {
    let (name, previous) = (&docker.container, docker.previous());
    let d = |args: &[&str]| quote(&docker.words(args));
    let state = d(&[
        "container",
        "inspect",
        "--format",
        "{{.State.Status}}",
        name,
    ]);
    let kept = d(&["container", "inspect", "--format", "{{.Id}}", &previous]);
    let file = quote_word(&format!(
        "{}.previous",
        crate::remote::protocol::stage_file(tag, node)
    ));
    format!(
        "if {kept} >/dev/null 2>&1; then\n\
         if [ \"$({state} 2>/dev/null)\" = running ]; then {drop_previous} >/dev/null 2>&1;\n\
         else {drop_managed} >/dev/null 2>&1; {rename_back} >/dev/null 2>&1 && \
         {{ [ \"$(cat {file} 2>/dev/null)\" != running ] || {start} >/dev/null 2>&1; echo restored_previous=true; }}; fi\n\
         fi\n\
         rm -f {file}\n\
         true",
        drop_previous = d(&["rm", "-f", &previous]),
        drop_managed = d(&["rm", "-f", name]),
        rename_back = d(&["rename", &previous, name]),
        start = d(&["start", name]),
    )
}

/// A new container that is not running right after its start (a command
/// that fails at once, removed by --rm, restarting over and over) is a
/// failed deploy, with its status and last words (or, if it printed
/// nothing, what it needs), not `ok`, and the previous one is back.
/// Defines `last` and `fail` for the readiness loop.
fn held_or_restored(script: &mut Script, docker: &Docker) {
    let state = quote(&docker.words(&[
        "container",
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        &docker.container,
    ]));
    let logs = quote(&docker.words(&["logs", "--tail", "5", &docker.container]));
    script.line(&format!(
        "last() {{ out=$({logs} 2>&1) || out=; if [ -n \"$out\" ]; then echo 'its last lines:' >&2; \
         printf '%s\\n' \"$out\" | sed 's/^/  /' >&2; else echo {silent} >&2; fi; }}\n\
         fail() {{ last; restore; exit 1; }}\n\
         state=$({state} 2>/dev/null)\n\
         case $state in\n\
         running*) ;;\n\
         exited*|dead*) echo \"the container exited at once with status ${{state#* }}\" >&2; fail ;;\n\
         ''|removing*) echo 'the container is gone at once (it exited, and was removed)' >&2; fail ;;\n\
         *) echo \"the container is ${{state%% *}} at once, not running\" >&2; fail ;;\n\
         esac",
        silent = quote_word(
            "it printed nothing: an image whose own command ends at once needs one that keeps \
             running, after -- (e.g. -- sleep infinity)"
        )
    ));
}

/// How long a container without a HEALTHCHECK (and no --ready-cmd) must
/// keep running after its start to count as ready, in half seconds.
const SETTLE_HALF_SECONDS: u64 = 4;

/// The readiness loop (`--wait`): every half second, the container's state;
/// ready when healthy (HEALTHCHECK), or when `ready_cmd` succeeds in it, or
/// (neither) when it still runs after the settle time. A container that
/// exits, turns unhealthy or is not ready in time fails the node (stage
/// ready) with its last log lines, and the previous container is back
/// (`fail`, defined by `held_or_restored`).
/// Prints `ready_ms=`.
fn wait_until_ready(script: &mut Script, docker: &Docker, seconds: u64, ready_cmd: Option<&str>) {
    script.stage(Stage::Ready);
    let state = quote(&docker.words(&[
        "container",
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
         case $1 in exited|dead) echo \"the container exited with status $2 before it was ready\" >&2; fail ;; esac\n\
         [ \"$3\" = unhealthy ] && {{ echo 'the container is unhealthy' >&2; fail; }}\n\
         {probe}\n\
         i=$((i+1))\n\
         [ $i -lt {} ] || {{ echo 'not ready after {seconds} s' >&2; fail; }}\n\
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
/// after it, it may be stopped aside, and the new one may or may not run.
fn where_the_old_one_is(failure: Failure) -> Failure {
    if !matches!(failure.stage, Stage::Interrupted | Stage::Timeout) {
        return failure;
    }
    // Where the run was cut (remote::script::interpret); none: not started.
    let during = failure.fields.get("during").and_then(|d| d.as_str());
    let before_remove = matches!(during, None | Some("connect" | "pull" | "inspect"));
    let said = match before_remove {
        true => KEPT,
        false => "the old container may be stopped aside (CONTAINER_NAME.baleine-previous, which the next deploy or destroy takes care of) and the new one not running yet: baleine-ps shows what runs there",
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

/// The first node resolves the digest; the others start at once and wait
/// for it on their session's stdin (their key exchange and login overlap
/// its pull), or, started after it is known, run it.
struct Pin {
    state: Mutex<PinInner>,
}

struct PinInner {
    state: PinState,
    /// The stdin of each follower's session waiting for the pin.
    waiting: Vec<(String, std::process::ChildStdin)>,
    /// The followers told to go on (a digest, or unpinned): the others
    /// never touched their node.
    told: std::collections::HashSet<String>,
}

enum PinState {
    Unclaimed,
    Resolving,
    Resolved(Option<ImageRef>),
    /// The first node's digest is not the registry's for the tag (or
    /// names another repository): no other node may run it.
    Refused(String),
}

enum Role {
    First,
    Follow(Option<ImageRef>),
    /// Resolving: start now, and wait for the pin on stdin.
    Await,
    Refused(String),
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
            state: Mutex::new(PinInner {
                state,
                waiting: Vec::new(),
                told: Default::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PinInner> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn role(&self) -> Role {
        let mut inner = self.lock();
        match &inner.state {
            PinState::Unclaimed => {
                inner.state = PinState::Resolving;
                Role::First
            }
            PinState::Resolved(image) => Role::Follow(image.clone()),
            PinState::Refused(why) => Role::Refused(why.clone()),
            PinState::Resolving if stop::stopping() => Role::Stopped,
            PinState::Resolving => Role::Await,
        }
    }

    fn resolve(&self, image: Option<ImageRef>) {
        self.settle(PinState::Resolved(image));
    }

    fn refuse(&self, why: String) {
        self.settle(PinState::Refused(why));
    }

    /// Settles the pin and tells every waiting follower.
    fn settle(&self, state: PinState) {
        let mut inner = self.lock();
        inner.state = state;
        let word = word_of(&inner.state);
        let waiting = std::mem::take(&mut inner.waiting);
        for (node, stdin) in waiting {
            inner.tell(node, stdin, &word);
        }
    }

    /// A follower's session stdin: told the pin now if it is known, else
    /// when it is.
    fn wait_on(&self, node: &str, stdin: std::process::ChildStdin) {
        timeline(node, "session started, waiting for the pin");
        let mut inner = self.lock();
        match inner.state {
            PinState::Unclaimed | PinState::Resolving => {
                inner.waiting.push((node.to_owned(), stdin))
            }
            _ => {
                let word = word_of(&inner.state);
                inner.tell(node.to_owned(), stdin, &word);
            }
        }
    }

    /// Whether `node`'s session was told to go on: if not, its script
    /// stopped (or was cut) before it did anything.
    fn told(&self, node: &str) -> bool {
        self.lock().told.contains(node)
    }

    /// What the group's pin settled to: the image (None: unpinned), or why
    /// it was refused; None while it is not settled.
    fn settled(&self) -> Option<Result<Option<ImageRef>, String>> {
        match &self.lock().state {
            PinState::Resolved(image) => Some(Ok(image.clone())),
            PinState::Refused(why) => Some(Err(why.clone())),
            _ => None,
        }
    }

    /// Why the group's digest was refused, if it was.
    fn refused(&self) -> Option<String> {
        self.settled().and_then(Result::err)
    }
}

/// When the run began, for its timeline.
static STARTED: OnceLock<std::time::Instant> = OnceLock::new();

/// One event of the run's timeline (`RUST_LOG=baleine::jobs::deploy=debug`:
/// `timeline fit07 12345 ms: pin written`), which make bench tabulates.
fn timeline(node: &str, event: &str) {
    let ms = STARTED
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis();
    log::debug!("timeline {node} {ms} ms: {event}");
}

/// The line a waiting follower reads (see `await_pin`): the digest,
/// `unpinned`, or `stop` (refused, or the run is stopping).
fn word_of(state: &PinState) -> String {
    match state {
        _ if stop::stopping() => "stop".into(),
        PinState::Resolved(Some(image)) => image.digest.clone().unwrap_or_else(|| "stop".into()),
        PinState::Resolved(None) => UNPINNED.into(),
        _ => "stop".into(),
    }
}

impl PinInner {
    /// Writes the pin to a follower's session and closes it (a session
    /// already gone is nothing to tell).
    fn tell(&mut self, node: String, mut stdin: std::process::ChildStdin, word: &str) {
        use std::io::Write;
        timeline(&node, "pin written");
        let written = stdin.write_all(format!("{word}\n").as_bytes()).is_ok();
        if written && word != "stop" {
            self.told.insert(node);
        }
    }
}

/// The registry's own digest for an image's tag, asked by the gateway
/// while the first node pulls (never on the critical path): the pin must
/// be it. None where the gateway cannot ask (another registry than the
/// repo, or an image given by digest).
type RegistryDigest = crossbeam::channel::Receiver<Result<Option<String>, String>>;

/// How long the first node's digest waits for the registry's, at most,
/// once it has it (the registry was asked when the pull began).
const VERIFY_WAIT: Duration = Duration::from_secs(10);

/// Asks the registry the nodes pull `image` from (the repo, or the mirror
/// for Docker Hub's images) for its tag's digest, in a thread of its own.
fn registry_digest(
    config: &crate::domain::config::Config,
    image: &ImageRef,
) -> Option<RegistryDigest> {
    if image.digest.is_some() {
        return None;
    }
    let repo = match config.save_port {
        Some(port) => format!("{}:{port}", config.save_url),
        None => config.save_url.clone(),
    };
    let registry = match &image.domain {
        // The mirror as the gateway reaches it: REGISTRY_URL's host, port 81.
        None => crate::remote::registry::Registry::with_timeout(
            &format!("http://{}", mirror_address(&config.registry_url)),
            None,
            VERIFY_WAIT,
        ),
        Some(domain) if *domain == repo || *domain == config.save_url => {
            crate::remote::registry::Registry::from_config_with_timeout(config, VERIFY_WAIT)
        }
        Some(_) => return None,
    };
    // Docker Hub's official images live under library/.
    let path = match (&image.domain, image.path.contains('/')) {
        (None, false) => format!("library/{}", image.path),
        _ => image.path.clone(),
    };
    let tag = image.tag.clone().unwrap_or_else(|| "latest".into());
    let (answer, asked) = crossbeam::channel::bounded(1);
    std::thread::spawn(move || {
        let _ = answer.send(
            registry
                .manifest_digest(&path, &tag)
                .map_err(|e| e.to_string()),
        );
    });
    Some(asked)
}

/// The mirror beside the repo at `repo` (`host[:port]`): on its host,
/// port 81 (bins/gateway), whatever port the repo has.
fn mirror_address(repo: &str) -> String {
    let host = repo.rsplit_once(':').map_or(repo, |(host, port)| {
        match port.bytes().all(|b| b.is_ascii_digit()) {
            true => host,
            false => repo,
        }
    });
    format!("{host}:81")
}

/// The pin from the first node's RepoDigests, or why no other node may
/// run what it resolved: a digest of another repository (or none of this
/// one), or not the registry's digest for the tag.
fn verified_pin(
    image: &ImageRef,
    digests: &str,
    registry: Option<&RegistryDigest>,
) -> Result<Option<ImageRef>, String> {
    let node_said = || crate::framework::output::shortened(digests, 300);
    // No digest at all (an image built or loaded there, never pushed):
    // nothing to pin the others to; they resolve their own.
    if serde_json::from_str::<Vec<String>>(digests).is_ok_and(|list| list.is_empty()) {
        return Ok(None);
    }
    let digest = repo_digest(image, digests).ok_or_else(|| {
        format!(
            "the first node named no digest of {} (it said {}): its image is not the one asked for",
            image.repository(),
            node_said()
        )
    })?;
    let pinned = image.with_digest(&digest).map_err(|e| e.to_string())?;
    let Some(registry) = registry else {
        return Ok(Some(pinned));
    };
    let tag = image.tag.as_deref().unwrap_or("latest");
    match registry.recv_timeout(VERIFY_WAIT) {
        Ok(Ok(Some(expected))) if expected == digest => Ok(Some(pinned)),
        Ok(Ok(Some(expected))) => Err(format!(
            "the first node resolved {digest}, but the registry serves {expected} for {}:{tag}: \
             no other node runs it",
            image.repository()
        )),
        Ok(Ok(None)) => Err(format!(
            "the first node resolved {digest}, but the registry has no {}:{tag}: no other node runs it",
            image.repository()
        )),
        // Not verifiable now (the gateway cannot reach that registry): the
        // pin stands on the node's word, as with any other registry.
        Ok(Err(e)) => {
            log::info!("cannot check the first node's digest of {image} with the registry: {e}");
            Ok(Some(pinned))
        }
        Err(_) => {
            log::info!("the registry did not say the digest of {image} in time: not checked");
            Ok(Some(pinned))
        }
    }
}

/// Deploys `plan` on every node of `fleet`, one record per node.
pub fn run(fleet: &Fleet, plan: DeployPlan) -> ExitCode {
    STARTED.get_or_init(std::time::Instant::now);
    let job = DeployJob {
        docker: Docker::from_config(&fleet.config),
        run_options: fleet.config.run_options(),
        pins: Mutex::new(std::collections::HashMap::new()),
        pinning: plan.pin && !fleet.dry_run,
        labels: RunLabels {
            user: crate::domain::config::login_name(),
            run: fleet.tag.clone(),
        },
        plan,
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

/// One deploy over the fleet: the plan (the command line's), and for each
/// image the digest its first node resolves for the others of its group.
struct DeployJob {
    plan: DeployPlan,
    docker: Docker,
    run_options: Vec<String>,
    /// One pin per image as asked: each group has its own first node.
    pins: Mutex<std::collections::HashMap<String, Arc<Pin>>>,
    /// Followers are pinned (not with --no-pin, nor in a dry run).
    pinning: bool,
    labels: RunLabels,
    explain: PullExplainer,
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
        // As the nodes name it.
        let mirror = mirror_address(&self.config.save_url);
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
                "{image}: no such image on the nodes' mirror {mirror} (Docker Hub, behind it, \
                 could not be reached to ask)"
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
/// the others of its group (first node only), the pinned image it runs
/// otherwise, and its plan (its request, with the node's own values).
struct Started {
    /// Taken by the first node's early digest line, or else by `finish`.
    first: Option<Arc<Mutex<Option<Resolver>>>>,
    pinned: Option<ImageRef>,
    /// A follower started before its group's pin was known: the pin it
    /// waited for on stdin.
    awaited: Option<Arc<Pin>>,
    plan: DeployPlan,
}

impl DeployJob {
    /// The pin of `image`'s group.
    fn pin_of(&self, image: &ImageRef) -> Arc<Pin> {
        self.pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(image.to_string())
            .or_insert_with(|| Arc::new(Pin::new(self.pinning)))
            .clone()
    }

    /// The node's plan: its request over the command line's, its
    /// placeholders filled in.
    fn plan_for(&self, node: &NodeName, request: Option<&Request>) -> Result<DeployPlan, Failure> {
        let plan = self.plan.requested(request).map_err(|e| {
            let line = request.map_or(String::new(), |r| format!("stdin line {}: ", r.line));
            Failure::new(Stage::Input, format!("{line}{e}"))
        })?;
        plan.for_node(node)
    }

    /// The request a node's record carries, so that the record, fed back,
    /// asks for exactly the same again (failed ones too: a retry).
    fn request_fields(&self, plan: &DeployPlan, digest: Option<&str>) -> Fields {
        let mut fields = Fields::new()
            .with("image", plan.image.as_ref().map(|i| i.to_string()))
            .with("digest", digest.map(String::from))
            .with("options", as_asked(&plan.options))
            .with("command", as_asked(&plan.command));
        if let Some(seconds) = plan.wait {
            fields.set("wait", seconds);
            fields.set("ready_cmd", plan.ready_cmd.clone());
        }
        fields
    }
}

/// The first node's duty to resolve the pin. Dropped undone (the node's
/// work panicked), it resolves to "no pin", so the others never wait for ever.
struct Resolver {
    pin: Arc<Pin>,
    /// The registry's digest for the tag, being asked.
    registry: Option<RegistryDigest>,
}

impl Resolver {
    fn resolve(self, image: Option<ImageRef>) {
        self.pin.resolve(image);
        crate::framework::output::set_note(None);
        std::mem::forget(self);
    }

    /// The pin from the first node's digests, checked.
    /// (Checked with the registry when the node pulled: an image already
    /// there, `--pull missing`, is what the node has, not what the registry
    /// serves today.)
    fn resolve_from(self, asked: &ImageRef, digests: &str, pulled: bool) {
        timeline("first node", "digest resolved");
        let registry = self.registry.as_ref().filter(|_| pulled);
        match verified_pin(asked, digests, registry) {
            Ok(pinned) => self.resolve(pinned),
            Err(why) => {
                self.pin.refuse(why);
                crate::framework::output::set_note(None);
                std::mem::forget(self);
            }
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.pin.resolve(None);
        crate::framework::output::set_note(None);
    }
}

impl DeployJob {
    /// The node's part in its image's group: the first node, which resolves
    /// the digest, a follower pinned to it (known already), or a follower
    /// that starts now and waits for it on its session's stdin.
    fn role(&self, node: &NodeName, image: &ImageRef) -> Result<(Option<Resolver>, Role), Failure> {
        let pin = self.pin_of(image);
        Ok(match pin.role() {
            Role::Stopped => return Err(where_the_old_one_is(Failure::not_started())),
            Role::First => {
                crate::framework::output::set_note(Some(format!(
                    "{node} pulls {image} and resolves its digest, its group waits"
                )));
                let registry = registry_digest(&self.explain.config, image);
                (Some(Resolver { pin, registry }), Role::First)
            }
            Role::Refused(why) => {
                return Err(Failure::new(
                    Stage::Verify,
                    format!("{why}\nthe running container, if any, was left as it was"),
                ))
            }
            role => (None, role),
        })
    }
}

impl DeployJob {
    /// `start`, once the node's plan is known.
    fn start_planned(&self, node: &NodeName, plan: DeployPlan) -> Result<Remote<Started>, Failure> {
        let image = plan.image.clone().expect("a node's plan names its image");
        // A request's digest pins its node at once: no first node to wait for.
        let pinned_by_request = match &plan.digest {
            Some(digest) => Some(
                image
                    .with_digest(digest)
                    .map_err(|e| Failure::new(Stage::Input, e.to_string()))?,
            ),
            None => None,
        };
        let (first, role) = match pinned_by_request {
            Some(pinned) => (None, Role::Follow(Some(pinned))),
            None => self.role(node, &image)?,
        };
        let (pinned, awaiting) = match role {
            Role::Follow(pinned) => (pinned, None),
            Role::Await => (None, Some(self.pin_of(&image))),
            _ => (None, None),
        };
        let script = match awaiting {
            Some(_) => {
                deploy_script_awaiting_pin(&plan, &self.docker, &self.run_options, &self.labels)
            }
            None => deploy_script(
                &plan,
                &self.docker,
                &self.run_options,
                pinned.as_ref(),
                &self.labels,
            ),
        };
        let first = first.map(|resolver| Arc::new(Mutex::new(Some(resolver))));
        let mut remote = Remote::new(
            script,
            Started {
                first: first.clone(),
                pinned,
                awaited: awaiting.clone(),
                plan,
            },
        );
        if let Some(pin) = awaiting {
            // Its wait (at most the first node's time) is not its work's.
            remote.waits = self.timeout;
            // The session starts now; its pin is written when known.
            let name = node.to_string();
            remote.io.stdin_gate =
                Some(StdinGate(Arc::new(move |stdin| pin.wait_on(&name, stdin))));
            // Logged in, its script waiting: the handshake is done.
            let name = node.to_string();
            remote.io.early = Some(LineFeed(Arc::new(move |line: &str| {
                if line.starts_with("awaiting=") {
                    timeline(&name, "logged in, its script waits for the pin");
                }
            })));
        }
        if let Some(first) = first {
            // The digest as soon as the first node has the image.
            let pulled = Arc::new(std::sync::atomic::AtomicBool::new(false));
            remote.io.early = Some(LineFeed(Arc::new(move |line: &str| {
                if line == "pulled=yes" {
                    pulled.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let Some(digests) = line.strip_prefix("digests=") else {
                    return;
                };
                // Taken first: the check may wait for the registry, and
                // nothing else may wait on this lock meanwhile.
                let resolver = first.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(resolver) = resolver {
                    let pulled = pulled.load(std::sync::atomic::Ordering::SeqCst);
                    resolver.resolve_from(&image, digests, pulled);
                }
            })));
        }
        Ok(remote)
    }
}

/// What a deploy replaced: the previous container's image as asked and its
/// digest (from its labels), so that a rollback needs no archaeology.
fn previous_fields(session: &Session) -> Fields {
    let Some((image, digest)) = session.repeated("previous").last().and_then(previous_of) else {
        return Fields::new();
    };
    Fields::new()
        .with("previous_image", image)
        .with("previous_digest", digest)
}

/// The image (its label, else its configuration's) and digest label of the
/// container a deploy replaced, from keep_previous's line
/// `/NAME|STATE|"config image" "label image" "label digest"`.
fn previous_of(line: &str) -> Option<(String, Option<String>)> {
    let mut fields = line.splitn(3, '|');
    let (_name, _state, json) = (fields.next()?, fields.next()?, fields.next()?);
    let strings: Vec<String> = serde_json::Deserializer::from_str(json)
        .into_iter::<String>()
        .take(3)
        .collect::<Result<_, _>>()
        .ok()?;
    let [config, label, digest] = <[String; 3]>::try_from(strings).ok()?;
    let image = if label.is_empty() { config } else { label };
    let digest = (!digest.is_empty()).then_some(digest);
    (!image.is_empty()).then_some((image, digest))
}

impl Job for DeployJob {
    type Context = Started;

    fn action(&self) -> &'static str {
        "deploy"
    }

    fn columns(&self) -> &'static [Column] {
        &[
            table::NODE,
            table::IMAGE,
            table::DIGEST,
            Column {
                header: "REPLACED",
                cell: Cell::Text("previous_image"),
            },
            Column {
                header: "READY IN",
                cell: Cell::Millis("ready_ms"),
            },
            table::TOOK,
        ]
    }

    fn cleanup(&self, node: &NodeName, tag: &str) -> String {
        put_back(&self.docker, tag, node)
    }

    fn request_check(&self) -> Option<RequestCheck> {
        let (plan, timeout) = (self.plan.clone(), self.timeout);
        Some(Arc::new(move |request: &Request| {
            let plan = plan.requested(Some(request))?;
            wait_within(plan.wait, timeout).map_err(|problem| format!("field {problem}"))
        }))
    }

    /// Nothing was done on the node: its old container runs on, and the
    /// record asks for what the node was to run (a retry asks for it again).
    fn not_started(&self, node: &NodeName, request: Option<&Request>) -> Failure {
        let failure = where_the_old_one_is(Failure::not_started());
        match self.plan_for(node, request) {
            Ok(plan) => failure.and(self.request_fields(&plan, plan.digest.as_deref())),
            Err(_) => failure,
        }
    }

    fn start(
        &self,
        node: &NodeName,
        request: Option<&Request>,
    ) -> Result<Remote<Started>, Failure> {
        let plan = self.plan_for(node, request)?;
        // A node that fails before its session still says what it was asked.
        let fields = self.request_fields(&plan, plan.digest.as_deref());
        self.start_planned(node, plan)
            .map_err(|failure| failure.after(fields))
    }

    fn finish(
        &self,
        node: &NodeName,
        started: Started,
        session: &Session,
    ) -> Result<Fields, Failure> {
        timeline(node, "ended");
        let result = session.values();
        let asked = started
            .plan
            .image
            .clone()
            .expect("a node's plan names its image");
        // A follower that waited for its pin: what it was told.
        let told = started.awaited.as_ref().and_then(|pin| pin.settled());
        // Cut while it waited: it never began.
        if let (Some(pin), Err(cut)) = (&started.awaited, &result) {
            if matches!(cut.stage, Stage::Interrupted | Stage::Timeout) && !pin.told(node.as_str())
            {
                let how = match cut.stage {
                    Stage::Interrupted => "interrupted",
                    _ => "timed out",
                };
                let request = self.request_fields(&started.plan, None);
                return Err(Failure::new(
                    cut.stage,
                    format!("{how} before starting: its group's digest had not come\n{KEPT}"),
                )
                .after(request));
            }
        }
        if let Some(Err(why)) = &told {
            let request = self.request_fields(&started.plan, None);
            return Err(Failure::new(Stage::Verify, format!("{why}\n{KEPT}")).after(request));
        }
        let pinned = started
            .pinned
            .clone()
            .or_else(|| told.and_then(Result::ok).flatten());
        let digest = match (&result, &pinned) {
            (_, Some(image)) => image.digest.clone(),
            (Ok(values), None) => values.get("digests").and_then(|d| repo_digest(&asked, d)),
            // A first node that failed after resolving still says what it resolved.
            (Err(_), None) => session
                .repeated("digests")
                .last()
                .and_then(|d| repo_digest(&asked, d)),
        };
        let was_first = started.first.is_some();
        let resolver = started
            .first
            .and_then(|first| first.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(resolver) = resolver {
            // A failed first node leaves the others unpinned rather than
            // stuck; one that never said its digests early is judged now.
            match (&result, session.repeated("digests").last()) {
                // (Its early lines never came: checked if it pulled.)
                (Ok(_), Some(digests)) => resolver.resolve_from(
                    &asked,
                    digests,
                    session.repeated("pulled").any(|p| p == "yes"),
                ),
                _ => resolver.resolve(None),
            }
        }
        // The first node's digest refused: its own record says so too.
        let refused = match was_first {
            true => self.pin_of(&asked).refused(),
            false => None,
        };
        let request = self.request_fields(&started.plan, digest.as_deref());
        let previous = previous_fields(session);
        let result = match (result, refused) {
            (Ok(_), Some(why)) => Err(Failure::new(
                Stage::Verify,
                format!("{why}\nthis node runs it: check this node"),
            )),
            (result, _) => result,
        };
        let values = result.map_err(|failure| {
            let restored = session.repeated("restored_previous").any(|r| r == "true");
            // Put back by the cleanup of a cut session: no "may be aside".
            let failure = match restored {
                true => failure,
                false => where_the_old_one_is(failure),
            };
            let failure = self.explain.explain(&asked, failure);
            let failure = match restored {
                true => Failure {
                    error: format!(
                        "{}\nthe previous container is back, as it was",
                        failure.error
                    ),
                    ..failure
                }
                .with("restored_previous", true),
                false => failure,
            };
            failure.after(request.clone().and(previous.clone()))
        })?;
        let fields = request
            .with("container", values.get("container").cloned())
            .with("pinned", pinned.is_some())
            .with("replaced", values.get("removed").map(|r| r == "true"))
            .and(previous);
        // With --wait, the record says the container was ready, and when.
        let readiness = match started.plan.wait {
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
    // Requests are checked before any node is reloaded: a refused one
    // reloads none (each gets its record, not started).
    let inputs = fleet.all_inputs(job.request_check());
    let nodes: Vec<String> = inputs
        .iter()
        .filter_map(Input::node)
        .map(String::from)
        .collect();
    let failed = if nodes.is_empty() || fleet.dry_run || stop::stopping() {
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
        assert!(cut("run").contains("may be stopped aside"));
        assert!(where_the_old_one_is(Failure::not_started())
            .error
            .ends_with(KEPT));
        let timeout = Failure::new(Stage::Timeout, "x").with("during", "remove");
        assert!(where_the_old_one_is(timeout)
            .error
            .contains("may be stopped aside"));
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
                "busybox:1.36: no such image on the nodes' mirror faraday.repo:81 (Docker Hub, behind it, could not be reached to ask)"
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

    fn labels() -> RunLabels {
        RunLabels {
            user: "alice".into(),
            run: "t1".into(),
        }
    }

    #[test]
    fn first_node_pulls_runs_and_inspects_with_every_word_quoted() {
        let mut plan = DeployPlan::new(
            Some("busybox"),
            Some("-e 'MSG=hello world'"),
            vec!["sh".into(), "-c".into(), "echo $MSG; id".into()],
        )
        .unwrap();
        plan.stop_timeout = None;
        let script = deploy_script(
            &plan,
            &docker(),
            &["--network=host".into()],
            None,
            &labels(),
        );
        // The digest from what the pull said; inspect only when it said none.
        assert!(script.contains("pulled=$(docker pull busybox) || {"));
        assert!(script.contains("'Digest: sha256:'*) digest=${l#Digest: }"));
        assert!(script.contains(
            "docker run -d --name container '--pull=never' '--network=host' -e 'MSG=hello world' --label"
        ));
        assert!(
            script.contains(" busybox sh -c 'echo $MSG; id')"),
            "{script}"
        );
        assert!(script.contains("{{json .RepoDigests}}"));
        // The image is there before the running container is set aside.
        let aside = script
            .find("docker rename container container.baleine-previous")
            .unwrap();
        assert!(script.find("docker pull").unwrap() < aside);
        // Labelled with what was asked, so baleine-ps can say it.
        for label in [
            "'--label' 'org.r2lab.baleine.image=busybox'",
            r#"'org.r2lab.baleine.command=["sh","-c","echo $MSG; id"]'"#,
            "'org.r2lab.baleine.user=alice'",
            "'org.r2lab.baleine.run=t1'",
            "--label \"org.r2lab.baleine.digest=$digest\"",
        ] {
            let label = label.replace("'--label' ", "--label ");
            assert!(script.contains(&label), "{label}: {script}");
        }
    }

    #[test]
    fn the_previous_container_is_kept_until_the_new_one_holds() {
        let plan = DeployPlan::new(Some("busybox"), None, vec![]).unwrap();
        let script = deploy_script(&plan, &docker(), &[], None, &labels());
        let at = |text: &str| {
            script
                .find(text)
                .unwrap_or_else(|| panic!("{text}: {script}"))
        };
        // Stopped and set aside, not removed, before the new one runs...
        assert!(
            at("docker stop -t 0 container")
                < at("docker rename container container.baleine-previous")
        );
        assert!(at("docker rename container container.baleine-previous") < at("docker run -d"));
        // ...put back if the new one fails to run or exits at once...
        assert!(script.contains("restore; exit 1"));
        assert!(
            at("exited*|dead*)")
                < at("docker rm -f container.baleine-previous >/dev/null 2>&1\necho removed")
        );
        // ...and removed only once it holds.
        assert!(!script.contains("docker rm -f container >/dev/null 2>&1\ndocker run"));
    }

    #[test]
    fn a_kept_aside_container_is_told_by_its_name_alone_never_by_a_label() {
        let plan = DeployPlan::new(Some("faraday.repo/container"), None, vec![]).unwrap();
        let script = deploy_script(&plan, &docker(), &[], None, &labels());
        // The line of each name is found by its first field, exactly.
        assert!(
            script.contains("case $l in '/container|'*) managed=$l ;; '/container.baleine-previous|'*) kept=$l ;; esac"),
            "{script}"
        );
        // A label's text is a JSON string: it cannot break a line.
        assert!(
            script.contains(r#"{{json (index .Config.Labels "org.r2lab.baleine.image")}}"#),
            "{script}"
        );
        // Put back only if it ran: a stopped container stays stopped.
        assert!(script.contains("[ \"$pstate\" != running ] || docker start container"));
    }

    #[test]
    fn what_a_deploy_replaced_is_read_from_json_strings_whatever_the_labels_say() {
        assert_eq!(
            previous_of(r#"/container|running|"busybox" "" """#),
            Some(("busybox".into(), None))
        );
        assert_eq!(
            previous_of(r#"/container|exited|"busybox@sha256:1" "busybox" "sha256:1""#),
            Some(("busybox".into(), Some("sha256:1".into())))
        );
        // A label with a `|`, quotes or an escaped newline stays one value.
        assert_eq!(
            previous_of(
                r#"/container|running|"x" "a|b \"c\"\n/container.baleine-previous|running|" "d""#
            ),
            Some((
                "a|b \"c\"\n/container.baleine-previous|running|".into(),
                Some("d".into())
            ))
        );
        // Anything else is nothing replaced that we can name.
        assert_eq!(previous_of("/container|running"), None);
        assert_eq!(previous_of(r#"/container|running|"x" 3 "d""#), None);
        assert_eq!(previous_of(r#"/container|running|"" "" """#), None);
    }

    #[test]
    fn recorded_words_keep_their_braces_doubled_so_they_ask_for_the_same_again() {
        let words = vec!["echo".to_owned(), "{node} {{x}}".to_owned()];
        assert_eq!(as_asked(&words), ["echo", "{{node}} {{{{x}}}}"]);
        // Fed back, each word fills in to exactly what ran.
        for (asked, ran) in as_asked(&words).iter().zip(&words) {
            assert_eq!(&expand_placeholders(asked, "fit07").unwrap(), ran);
        }
    }

    #[test]
    fn pinned_nodes_pull_the_digest_only_if_missing_and_skip_the_inspect() {
        let plan = DeployPlan::new(Some("busybox"), None, vec![]).unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = plan.image.as_ref().unwrap().with_digest(&digest).unwrap();
        let script = deploy_script(&plan, &docker(), &[], Some(&pinned), &labels());
        // Pulled only if missing, and before the old container is set aside.
        assert!(script.contains(&format!(
            "docker image inspect busybox@{digest} >/dev/null 2>&1 || pulled=$(docker pull busybox@{digest})"
        )));
        assert!(script.find("docker pull").unwrap() < script.find("docker rename").unwrap());
        assert!(script.contains(&format!(" busybox@{digest})")));
        assert!(script.contains(&format!("digest={digest}")));
        assert!(!script.contains("RepoDigests"));
    }

    #[test]
    fn pull_never_is_honoured_even_when_pinned() {
        let mut plan = DeployPlan::new(Some("busybox"), None, vec![]).unwrap();
        plan.pull = PullPolicy::Never;
        let pinned = plan
            .image
            .as_ref()
            .unwrap()
            .with_digest(&format!("sha256:{}", "b".repeat(64)))
            .unwrap();
        assert!(
            deploy_script(&plan, &docker(), &[], Some(&pinned), &labels()).contains("--pull=never")
        );
        assert!(deploy_script(&plan, &docker(), &[], None, &labels()).contains("--pull=never"));
    }

    fn request(json: &str) -> Request {
        Request {
            line: 4,
            fields: serde_json::from_str(json).unwrap(),
        }
    }

    #[test]
    fn a_record_s_fields_override_the_command_line_for_its_node() {
        let defaults = DeployPlan::new(
            Some("busybox"),
            Some("-e A=1"),
            vec!["sleep".into(), "9".into()],
        )
        .unwrap();
        let digest = format!("sha256:{}", "c".repeat(64));
        let plan = defaults
            .requested(Some(&request(&format!(
                r#"{{"node":"fit01","ok":false,"stage":"run","image":"alpine:3","digest":"{digest}","options":"-e 'B=2 3'","command":["sh","-c","x"],"wait":"5s","elapsed_ms":3}}"#
            ))))
            .unwrap();
        assert_eq!(plan.image.unwrap().to_string(), "alpine:3");
        assert_eq!(plan.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(plan.options, ["-e", "B=2 3"]);
        assert_eq!(plan.command, ["sh", "-c", "x"]);
        assert_eq!(plan.wait, Some(5));
        // Fields it does not carry keep the command line's values; null is none.
        let plan = defaults
            .requested(Some(&request(
                r#"{"node":"fit01","options":["-e","C=4"],"digest":null}"#,
            )))
            .unwrap();
        assert_eq!(plan.image.unwrap().to_string(), "busybox");
        assert_eq!(
            (plan.options, plan.command, plan.digest),
            (
                vec!["-e".to_owned(), "C=4".to_owned()],
                vec!["sleep".to_owned(), "9".to_owned()],
                None
            )
        );
    }

    #[test]
    fn a_bad_request_names_its_field() {
        let defaults = DeployPlan::new(None, None, vec![]).unwrap();
        let error = |json: &str| defaults.requested(Some(&request(json))).unwrap_err();
        assert_eq!(
            error(r#"{"node":"fit01"}"#),
            "no image: give -i IMAGE, or an \"image\" field"
        );
        assert_eq!(
            error(r#"{"node":"fit01","image":7}"#),
            "field image: a string, not a number"
        );
        assert!(error(r#"{"node":"fit01","image":"busybox\nrm"}"#).starts_with("field image: "));
        assert_eq!(
            error(r#"{"node":"fit01","image":"busybox","command":"sleep 9"}"#),
            "field command: a list of strings, not a string"
        );
        assert_eq!(
            error(r#"{"node":"fit01","image":"busybox","options":[1]}"#),
            "field options: a string, not a number"
        );
        let huge = "x".repeat(MAX_FIELD + 1);
        assert!(error(&format!(
            r#"{{"node":"fit01","image":"busybox","command":["{huge}"]}}"#
        ))
        .contains("longer than"));
        let digest = format!("sha256:{}", "d".repeat(64));
        assert_eq!(
            error(&format!(r#"{{"node":"fit01","image":"busybox","digest":"alpine@{digest}"}}"#)),
            format!("field digest: \"alpine@{digest}\" is of repository alpine, not of the image busybox")
        );
        assert!(
            error(r#"{"node":"fit01","image":"busybox","digest":"md5:00"}"#)
                .starts_with("field digest: ")
        );
        // The same repository as Docker names it is fine.
        let ok = defaults.requested(Some(&request(&format!(
            r#"{{"node":"fit01","image":"busybox","digest":"docker.io/library/busybox@{digest}"}}"#
        ))));
        assert_eq!(ok.unwrap().digest, Some(digest));
    }

    #[test]
    fn bad_options_and_images_are_usage_errors() {
        assert!(DeployPlan::new(Some("busybox"), Some("-e 'unterminated"), vec![]).is_err());
        assert!(DeployPlan::new(Some("-v/:/host"), None, vec![]).is_err());
        assert!(DeployPlan::new(Some("Busybox"), None, vec![]).is_err());
    }
}
