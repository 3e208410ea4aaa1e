//! baleine-save's job: commit each node's managed container and push it to the repo registry, verified.
//!
//! Nothing is lost on failure: a failed push leaves the committed image on
//! the node under the name the record gives, and `--push-only` retries it.

use crate::domain::labels::LABEL_PREFIX;
use crate::domain::nodes::NodeName;
use crate::domain::record::{Failure, Fields, Stage};
use crate::domain::reference::{target_image, RepoName};
use crate::framework::cli::{Tool, VERSION};
use crate::framework::fleet::{Fleet, Job, Remote, Session};
use crate::framework::input::Request;
use crate::framework::input::{replay, Input};
use crate::framework::table::{self, Cell, Column};
use crate::framework::UsageError;
use crate::remote::quote::{quote, quote_word};
use crate::remote::registry::Registry;
use crate::remote::script::{Docker, Script};
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex};

crate::fleet_args! {
    /// Save the managed container of each node as an image in the repo registry
    /// (SAVE_URL): commit it with labels naming its source, push it, and check
    /// that the registry serves it. With several nodes each image is tagged
    /// TAG-<node>. Prints one JSON record per node; "image" is ready for
    /// baleine-deploy -i.
    #[argh(
        example = "baleine-save -n myexp:v1 fit03",
        example = "baleine-save -n myexp:v1 1-3      # myexp:v1-fit01, myexp:v1-fit02, myexp:v1-fit03",
        note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
                else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
                A failed push leaves the committed image on the node (\"local_image\"): retry with --push-only. \
                docker commit leaves out what bind mounts and volumes hold (R2Lab's run options mount the node's \
                container_fs on /var): the record lists them in \"not_saved\", and --include-mounts copies their \
                content into the image, as a layer on top. At most SAVE_PARALLEL nodes save at once; a push \
                the registry may accept later is tried again, and the registry must then serve the digest the \
                node pushed. The org.r2lab.baleine.* labels are what the node said about itself, not proof. \
                The repo registry has no accounts: whoever reaches it (the nodes, the gateway's users) can \
                push, so a save never replaces an existing NAME:TAG without --force, and SAVE_NAMESPACE \
                keeps users' names apart; deletes are possible only from the gateway itself (its loopback \
                admin instance), never from a node or the network.",
        error_code(1, "some node failed (its record says where and why)"),
        error_code(2, "usage, configuration or node-list error; nothing was done"),
        error_code(130, "interrupted; every node still got a record"),
        error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
    )]
    pub struct SaveArgs {
        timeout: (900, "give up on a node after this long: seconds, or 90s, 5m, 1h30m (default: 900)"),
        /// repository and tag to save as, NAME[:TAG] (tag defaults to latest)
        #[argh(option, arg_name = "NAME", short = 'n')]
        pub name: String,
        /// push the image a previous save committed but could not push
        #[argh(switch)]
        pub push_only: bool,
        /// also save what the container's bind mounts and volumes hold (docker
        /// commit leaves them out), as a layer on top of the commit
        #[argh(switch)]
        pub include_mounts: bool,
        /// replace NAME:TAG if the registry already has it (default: refuse, stage "exists")
        #[argh(switch)]
        pub force: bool,
    }
}

impl Tool for SaveArgs {
    const NAME: &'static str = "baleine-save";

    fn run(self, _: Vec<std::ffi::OsString>) -> Result<ExitCode, UsageError> {
        let mut plan = SavePlan::new(&self.name, self.push_only)?;
        plan.include_mounts = self.include_mounts;
        plan.force = self.force;
        let fleet = Fleet::prepare(self.fleet_options())?;
        plan.within(fleet.config.save_namespace.as_deref())?;
        run(&fleet, plan)
    }
}

/// What to save as: `NAME[:TAG]` inside the repo registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavePlan {
    pub name: String,
    pub tag: String,
    /// Push an image a previous save committed but could not push.
    pub push_only: bool,
    /// Copy the content of the container's mounts into the image.
    pub include_mounts: bool,
    /// Replace a tag the registry already has.
    pub force: bool,
}

impl SavePlan {
    /// Checks `NAME[:TAG]` against Docker's grammar. NAME is a repository
    /// inside SAVE_URL, so a registry host in it is refused.
    pub fn new(name_tag: &str, push_only: bool) -> Result<SavePlan, UsageError> {
        let RepoName { name, tag } =
            RepoName::parse(name_tag).map_err(|e| UsageError(format!("-n {e}")))?;
        Ok(SavePlan {
            name,
            tag,
            push_only,
            include_mounts: false,
            force: false,
        })
    }

    /// Puts the name under SAVE_NAMESPACE (`%u` is the user's login name),
    /// so users' saves cannot collide.
    pub fn within(&mut self, namespace: Option<&str>) -> Result<(), UsageError> {
        let mut name = RepoName {
            name: self.name.clone(),
            tag: self.tag.clone(),
        };
        name.within(namespace, &crate::domain::config::login_name())
            .map_err(UsageError)?;
        self.name = name.name;
        Ok(())
    }

    /// The tag for `node`: TAG alone for a single node, TAG-<node> for
    /// several, so that no node's save overwrites another's.
    pub fn tag_for(&self, node: &str, several: bool) -> Result<String, UsageError> {
        let tag = if several {
            format!("{}-{node}", self.tag)
        } else {
            self.tag.clone()
        };
        if tag.len() > 128 {
            return Err(UsageError(format!(
                "tag {tag:?} is longer than 128 characters"
            )));
        }
        Ok(tag)
    }
}

/// The remote script: commit the managed container with labels saying where
/// it came from, then push. With `push_only`, push the image already there.
pub fn save_script(
    docker: &Docker,
    target: &str,
    node: &str,
    created: &str,
    plan: &SavePlan,
) -> String {
    let mut script = Script::new();
    let container = &docker.container;
    if plan.push_only {
        script.stage(Stage::Push);
        let inspect = quote(&docker.words(&["image", "inspect", target]));
        script.line(&format!(
            "{inspect} >/dev/null 2>&1 || {{ echo {} >&2; exit 1; }}",
            quote_word(&format!(
                "no local image {target} to push: save without --push-only first"
            ))
        ));
    } else {
        script.stage(Stage::Commit);
        let inspect = quote(&docker.words(&[
            "inspect",
            "--format",
            "{{.Config.Image}}|{{.Image}}",
            container,
        ]));
        let missing = quote_word(&format!(
            "no container named {container} on this node: nothing to save"
        ));
        script.line(&format!(
            "info=$({inspect} 2>&1) || {{ case $info in *'No such'*) echo {missing} >&2 ;; \
             *) printf '%s\\n' \"$info\" >&2 ;; esac; exit 1; }}\n\
             src=${{info%%|*}}\n\
             case $src in *@*) digest=${{src#*@}} ;; *) digest=$({} \"${{info#*|}}\" 2>/dev/null); digest=${{digest#*@}} ;; esac",
            quote(&docker.words(&["image", "inspect", "--format", "{{index .RepoDigests 0}}"]))
        ));
        // Labels from the node's answers are inside one double-quoted word:
        // image references and digests hold no quote, and nothing is re-parsed.
        let fixed_labels = quote_word(&format!(
            "LABEL {LABEL_PREFIX}.source-node={node} {LABEL_PREFIX}.created={created} {LABEL_PREFIX}.version={VERSION}"
        ));
        // Without pausing: a paused container would freeze the sessions of
        // the users logged in it (rdsh) for the length of the commit.
        let commit = quote(&docker.words(&["commit", "--pause=false", "--change"]));
        script.line(&format!(
            "{commit} \"LABEL {LABEL_PREFIX}.source-image=\\\"$src\\\" {LABEL_PREFIX}.source-digest=\\\"$digest\\\"\" \
             --change {fixed_labels} {} {} >/dev/null || exit 1\n\
             echo \"source_image=$src\"; echo \"source_digest=$digest\"",
            quote_word(container),
            quote_word(target)
        ));
        mounts(&mut script, docker, target, plan.include_mounts);
        script.stage(Stage::Push);
    }
    push_with_retries(&mut script, docker, target);
    script.text().to_owned()
}

/// Mount points that hold the node's own system, not the experiment's data
/// (R2Lab's run options mount /lib/modules, /sys/fs/cgroup, dbus' socket):
/// --include-mounts leaves them out, and says so (`not_saved`).
const SYSTEM_MOUNTS: &str =
    "/sys|/sys/*|/proc|/proc/*|/dev|/dev/*|/run|/run/*|/var/run|/var/run/*|/lib/modules|/lib/modules/*";

/// `docker commit` leaves out what the container's bind mounts and volumes
/// hold (R2Lab's run options mount the node's container_fs on /var). The
/// script names them (`not_saved=` lines); with `include`, it copies their
/// content into a layer committed on top (same labels: the container is
/// created from the first commit) and names them as `included=`.
fn mounts(script: &mut Script, docker: &Docker, target: &str, include: bool) {
    let container = &docker.container;
    let list = quote(&docker.words(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{if or (eq .Type \"bind\") (eq .Type \"volume\")}}{{println .Destination}}{{end}}{{end}}",
        container,
    ]));
    script.line(&format!("mounts=$({list}) || exit 1"));
    if !include {
        script.line(
            "printf '%s\\n' \"$mounts\" | while IFS= read -r d; do [ -z \"$d\" ] || printf 'not_saved=%s\\n' \"$d\"; done",
        );
        return;
    }
    let docker_cmd = quote(&docker.command);
    let create = quote(&docker.words(&["create", "--name"]));
    let commit = quote(&docker.words(&["commit", "--pause=false"]));
    script.line(&format!(
        "if [ -n \"$mounts\" ]; then\n\
         t=baleine-save-$$\n\
         {ps} | while read -r old; do {docker_cmd} rm -f \"$old\" >/dev/null 2>&1; done\n\
         {create} \"$t\" {target} >/dev/null || exit 1\n\
         ok=1\n\
         while IFS= read -r d; do\n\
         [ -n \"$d\" ] || continue\n\
         case $d in {SYSTEM_MOUNTS}) printf 'not_saved=%s\\n' \"$d\"; continue ;; esac\n\
         {docker_cmd} cp {source}\"$d\" - | {docker_cmd} cp - \"$t:$(dirname \"$d\")\" || {{ ok=0; break; }}\n\
         printf 'included=%s\\n' \"$d\"\n\
         done <<BALEINE_MOUNTS\n\
         $mounts\n\
         BALEINE_MOUNTS\n\
         [ $ok = 1 ] && {commit} \"$t\" {target} >/dev/null; rc=$?\n\
         {docker_cmd} rm -f \"$t\" >/dev/null 2>&1\n\
         [ $ok = 1 ] && [ $rc = 0 ] || {{ echo 'cannot copy the mounts into the image' >&2; exit 1; }}\n\
         fi",
        target = quote_word(target),
        source = quote_word(&format!("{container}:")),
        // Left by a save that was killed halfway: they hold images and names.
        ps = quote(&docker.words(&["ps", "-aq", "--filter", "name=^baleine-save-"])),
        SYSTEM_MOUNTS = SYSTEM_MOUNTS,
    ));
}

/// Pushes, trying again (after 2 s, then 4 s) when the registry's error may
/// pass (a refused connection, a 5xx, a broken upload), not when it will
/// not (denied, unauthorized, an invalid name); prints the digest docker
/// pushed (`pushed_digest=`), which the registry must then serve.
fn push_with_retries(script: &mut Script, docker: &Docker, target: &str) {
    let push = quote(&docker.words(&["push", target]));
    script.line(&format!(
        "n=0\n\
         while :; do\n\
         out=$({push} 2>&1) && break\n\
         n=$((n+1))\n\
         case $out in *denied*|*unauthorized*|*'name invalid'*|*'name unknown'*) n=9 ;; esac\n\
         [ $n -lt 3 ] || {{ printf '%s\\n' \"$out\" >&2; exit 1; }}\n\
         sleep $((n * 2))\n\
         done\n\
         printf '%s\\n' \"$out\" | sed -n 's/.*digest: \\(sha256:[0-9a-f]*\\).*/pushed_digest=\\1/p' | tail -n 1"
    ));
}

/// Saves every node's container. The node list is read in full first: with
/// several nodes each image is tagged TAG-<node>.
pub fn run(fleet: &Fleet, plan: SavePlan) -> Result<ExitCode, UsageError> {
    let inputs = fleet.all_inputs(None);
    let several = inputs.iter().filter_map(Input::node).count() > 1;
    for node in inputs.iter().filter_map(Input::node) {
        plan.tag_for(node, several)?;
    }
    let job = SaveJob {
        docker: Docker::from_config(&fleet.config),
        registry: Registry::from_config(&fleet.config),
        created: crate::domain::clock::utc_now(),
        save_url: fleet.config.save_url.clone(),
        save_port: fleet.config.save_port,
        several,
        plan,
        pushes: Arc::new(Permits::new(fleet.config.save_parallel)),
    };
    Ok(fleet.run_inputs(&job, &replay(inputs), Vec::new()))
}

/// One save over the fleet.
struct SaveJob {
    plan: SavePlan,
    several: bool,
    docker: Docker,
    registry: Registry,
    /// The `created` label, the same on every node's image.
    created: String,
    save_url: String,
    save_port: Option<u16>,
    /// How many nodes save at once (SAVE_PARALLEL): the registry takes
    /// dozens of simultaneous pushes of the same layers badly.
    pushes: Arc<Permits>,
}

/// A counting semaphore: at most N holders at once.
struct Permits {
    free: Mutex<usize>,
    released: Condvar,
}

/// One permit, given back when dropped (whatever ends the node's save).
struct Permit(Arc<Permits>);

impl Permits {
    fn new(count: usize) -> Permits {
        Permits {
            free: Mutex::new(count.max(1)),
            released: Condvar::new(),
        }
    }

    /// Waits for a permit; None once the run is stopping.
    fn acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            if crate::domain::stop::stopping() {
                return None;
            }
            free = self
                .released
                .wait_timeout(free, std::time::Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *free -= 1;
        Some(Permit(self.clone()))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.released.notify_one();
    }
}

/// Where one node's image goes: its tag, and the full name the node pushes.
struct Target {
    tag: String,
    image: String,
    /// Held for the node's whole save.
    _permit: Permit,
}

impl Job for SaveJob {
    type Context = Target;

    fn action(&self) -> &'static str {
        "save"
    }

    fn columns(&self) -> &'static [Column] {
        &[
            table::NODE,
            table::IMAGE,
            table::DIGEST,
            Column {
                header: "NOT SAVED",
                cell: Cell::Text("not_saved"),
            },
            table::TOOK,
        ]
    }

    fn start(&self, node: &NodeName, _: Option<&Request>) -> Result<Remote<Target>, Failure> {
        // Checked for every node before the run: cannot fail here.
        let tag = self
            .plan
            .tag_for(node, self.several)
            .unwrap_or_else(|_| self.plan.tag.clone());
        let image = target_image(&self.save_url, self.save_port, &self.plan.name, &tag);
        // Saving never replaces an image silently: not another user's, not
        // an earlier save's.
        if !self.plan.force {
            match self.registry.manifest_digest(&self.plan.name, &tag) {
                Ok(None) => {}
                Ok(Some(digest)) => {
                    let error = format!(
                        "{image} already exists in the registry ({digest}): choose another \
                         name or tag, or replace it with --force"
                    );
                    return Err(Failure::new(Stage::Exists, error).with("image", image));
                }
                // Unreachable from here: the push meets the same registry
                // and fails with its own error if it is down.
                Err(e) => log::warn!("cannot check whether {image} exists: {e}"),
            }
        }
        let script = save_script(&self.docker, &image, node, &self.created, &self.plan);
        let permit = self.pushes.acquire().ok_or_else(Failure::not_started)?;
        Ok(Remote::new(
            script,
            Target {
                tag,
                image,
                _permit: permit,
            },
        ))
    }

    fn finish(&self, _: &NodeName, target: Target, session: &Session) -> Result<Fields, Failure> {
        let listed =
            |key: &str| -> Vec<String> { session.repeated(key).map(String::from).collect() };
        let values = session.values().map_err(|failure| {
            if failure.stage == Stage::Push {
                // The commit is on the node: say where, so it can be pushed again.
                failure.with("local_image", target.image.as_str())
            } else {
                failure
            }
        })?;
        // The push said it worked; believe the registry, not the client.
        let digest = match self.registry.manifest_digest(&self.plan.name, &target.tag) {
            Ok(Some(digest)) => digest,
            Ok(None) => {
                let error = format!(
                    "{}/v2/{}/manifests/{}: not served after the push",
                    self.registry.base(),
                    self.plan.name,
                    target.tag
                );
                return Err(Failure::new(Stage::Verify, error).with("local_image", target.image));
            }
            Err(e) => {
                return Err(
                    Failure::new(Stage::Verify, e.to_string()).with("local_image", target.image)
                )
            }
        };
        // Another push of the same tag (another user, a retry) must not
        // pass for ours: the registry serves what this node pushed.
        // A push that did not say what it pushed proves nothing either.
        let pushed = values.get("pushed_digest").filter(|d| !d.is_empty());
        if pushed != Some(&digest) {
            let error = match pushed {
                Some(pushed) => format!(
                    "the registry serves {digest} for {}, but this node pushed {pushed}",
                    target.image
                ),
                None => format!(
                    "docker push did not say which digest it pushed for {}: cannot tell \
                     whether the registry's {digest} is this node's",
                    target.image
                ),
            };
            return Err(Failure::new(Stage::Verify, error).with("local_image", target.image));
        }
        let mut fields = Fields::new();
        if self.plan.include_mounts {
            fields.set("included_mounts", listed("included"));
        }
        Ok(fields
            .with("image", target.image)
            .with("digest", digest)
            .with("source_image", values.get("source_image").cloned())
            .with(
                "source_digest",
                values
                    .get("source_digest")
                    .filter(|d| !d.is_empty())
                    .cloned(),
            )
            // What docker commit left out, so nobody loses it unknowingly.
            .with("not_saved", listed("not_saved")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reference::ImageRef;

    fn docker() -> Docker {
        Docker::default()
    }

    #[test]
    fn names_default_to_latest_and_hosts_are_refused() {
        assert_eq!(SavePlan::new("myexp", false).unwrap().tag, "latest");
        let plan = SavePlan::new("team/myexp:v1", false).unwrap();
        assert_eq!(
            (plan.name.as_str(), plan.tag.as_str()),
            ("team/myexp", "v1")
        );
        for bad in [
            "faraday.repo/x:v1",
            "localhost/x",
            "Bad Name",
            "x:-tag",
            "-x",
            "a;b",
            "",
        ] {
            assert!(SavePlan::new(bad, false).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn several_nodes_get_one_tag_each() {
        let plan = SavePlan::new("exp:v1", false).unwrap();
        assert_eq!(plan.tag_for("fit03", true).unwrap(), "v1-fit03");
        assert_eq!(plan.tag_for("fit03", false).unwrap(), "v1");
        assert_eq!(
            target_image("faraday.repo", None, "exp", "v1-fit03"),
            "faraday.repo/exp:v1-fit03"
        );
        assert_eq!(
            target_image("faraday.repo", Some(5000), "exp", "v1"),
            "faraday.repo:5000/exp:v1"
        );
        // What save reports is deployable as-is.
        assert!(ImageRef::parse("faraday.repo:5000/exp:v1-fit03").is_ok());
    }

    #[test]
    fn the_script_commits_with_labels_then_pushes() {
        let plan = SavePlan::new("exp:v1", false).unwrap();
        let script = save_script(
            &docker(),
            "faraday.repo/exp:v1",
            "fit03",
            "2026-11-22T00:00:00Z",
            &plan,
        );
        assert!(script.contains("m commit"));
        assert!(script.contains("docker commit '--pause=false'"), "{script}");
        // What commit leaves out is named, and kept only on request.
        assert!(script.contains("not_saved=%s"));
        assert!(!script.contains("included="));
        assert!(script.contains("org.r2lab.baleine.source-node=fit03"));
        assert!(script.contains("container faraday.repo/exp:v1 >/dev/null || exit 1"));
        assert!(script.find("m push").unwrap() > script.find("m commit").unwrap());
        assert!(script.contains("docker push faraday.repo/exp:v1"));
    }

    #[test]
    fn push_only_skips_the_commit() {
        let plan = SavePlan::new("exp:v1", true).unwrap();
        let script = save_script(&docker(), "faraday.repo/exp:v1", "fit03", "t", &plan);
        assert!(!script.contains("commit"));
        assert!(script.contains("no local image faraday.repo/exp:v1 to push"));
    }

    #[test]
    fn mounts_are_copied_on_top_on_request_and_pushes_are_retried() {
        let mut plan = SavePlan::new("exp:v1", false).unwrap();
        plan.include_mounts = true;
        let script = save_script(&docker(), "faraday.repo/exp:v1", "fit03", "t", &plan);
        assert!(
            script.contains("docker cp container:\"$d\" - | docker cp - \"$t:$(dirname \"$d\")\"")
        );
        assert!(script.find("included=").unwrap() < script.find("m push").unwrap());
        assert!(script.contains("*denied*|*unauthorized*"));
        assert!(script.contains("pushed_digest="));
    }
}
