//! Every tool's command line, in one place: the single source of `--help`, the man pages and the shell completions.
//!
//! The doc comments here are user-facing text: argh prints them for
//! `--help`, and `docs` turns the same definitions into man pages and
//! completions, so the three cannot drift apart.

use crate::deploy::PullPolicy;
use argh::{ArgsInfo, FromArgs};
use std::path::PathBuf;

/// Run IMAGE as the managed container on each node: remove the previous one,
/// pull, run, and print one JSON record per node. The first node resolves the
/// image digest; the others run that exact digest.
#[derive(FromArgs, ArgsInfo)]
#[argh(
    example = "rhubarbe nodes 1-5 | baleine-deploy -i busybox -- sleep infinity",
    example = "baleine-deploy -i faraday.repo/myexp:v2 --options \"-e 'MSG=hello world'\" 1-10 ~7",
    note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
            else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
            Words after -- are the container's command.",
    error_code(1, "some node failed (its record says where and why)"),
    error_code(2, "usage, configuration or node-list error; nothing was done"),
    error_code(130, "interrupted; every node still got a record")
)]
pub struct DeployArgs {
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
    /// stop the old container gracefully, waiting up to this many seconds (default: remove at once)
    #[argh(option)]
    pub stop_timeout: Option<u32>,
    /// do not pin the other nodes to the digest the first node resolved
    #[argh(switch)]
    pub no_pin: bool,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// how many nodes to work on at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    pub parallel: Option<usize>,
    /// give up on a node after this many seconds (default: 600)
    #[argh(option)]
    pub timeout: Option<u64>,
    /// print each node's ssh command and remote script instead of running them
    #[argh(switch)]
    pub dry_run: bool,
    /// nodes: 3, fit03, 1-5, 4-16-2, ~7 (default: stdin, then $NODES)
    #[argh(positional)]
    pub nodes: Vec<String>,
}

fn pull_policy(value: &str) -> Result<PullPolicy, String> {
    value.parse()
}

/// Remove the container baleine manages on each node (never other containers
/// or images) and print one JSON record per node, with "removed": false when
/// there was none. Asks for confirmation on the terminal unless -y is given.
#[derive(FromArgs, ArgsInfo)]
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
    error_code(130, "interrupted; every node still got a record")
)]
pub struct DestroyArgs {
    /// do not ask for confirmation
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// stop the container gracefully, waiting up to this many seconds (default: remove at once)
    #[argh(option)]
    pub stop_timeout: Option<u32>,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// how many nodes to work on at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    pub parallel: Option<usize>,
    /// give up on a node after this many seconds (default: 120)
    #[argh(option)]
    pub timeout: Option<u64>,
    /// print each node's ssh command and remote script instead of running them
    #[argh(switch)]
    pub dry_run: bool,
    /// nodes: 3, fit03, 1-5, 4-16-2, ~7 (default: stdin, then $NODES)
    #[argh(positional)]
    pub nodes: Vec<String>,
}

/// Save the managed container of each node as an image in the repo registry
/// (SAVE_URL): commit it with labels naming its source, push it, and check
/// that the registry serves it. With several nodes each image is tagged
/// TAG-<node>. Prints one JSON record per node; "image" is ready for
/// baleine-deploy -i.
#[derive(FromArgs, ArgsInfo)]
#[argh(
    example = "baleine-save -n myexp:v1 fit03",
    example = "baleine-save -n myexp:v1 1-3      # myexp:v1-fit01, myexp:v1-fit02, myexp:v1-fit03",
    note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
            else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
            A failed push leaves the committed image on the node (\"local_image\"): retry with --push-only.",
    error_code(1, "some node failed (its record says where and why)"),
    error_code(2, "usage, configuration or node-list error; nothing was done"),
    error_code(130, "interrupted; every node still got a record")
)]
pub struct SaveArgs {
    /// repository and tag to save as, NAME[:TAG] (tag defaults to latest)
    #[argh(option, short = 'n')]
    pub name: String,
    /// push the image a previous save committed but could not push
    #[argh(switch)]
    pub push_only: bool,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// how many nodes to work on at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    pub parallel: Option<usize>,
    /// give up on a node after this many seconds (default: 900)
    #[argh(option)]
    pub timeout: Option<u64>,
    /// print each node's ssh command and remote script instead of running them
    #[argh(switch)]
    pub dry_run: bool,
    /// nodes: 3, fit03, 1-5, 4-16-2, ~7 (default: stdin, then $NODES)
    #[argh(positional)]
    pub nodes: Vec<String>,
}

/// List every image tag in the registry at REGISTRY_PROTOCOL + REGISTRY_URL,
/// one JSON line per tag, sorted: {"repository","tag","image"}, where
/// "image" is the reference to give baleine-deploy -i.
#[derive(FromArgs, ArgsInfo)]
#[argh(
    example = "baleine-list",
    example = "baleine-list myexp --details | jq -r 'select(.labels[\"org.r2lab.baleine.source-node\"]) | .image'",
    note = "Credentials: REGISTRY_USER and REGISTRY_PASSWORD, else those of docker login \
            (~/.docker/config.json). Basic and Bearer-token registries are supported.",
    error_code(
        1,
        "the registry could not be read completely (stderr names the URL and why)"
    ),
    error_code(2, "usage or configuration error"),
    error_code(130, "interrupted")
)]
pub struct ListArgs {
    /// also show digest, size (compressed, config and layers), created,
    /// architecture and labels of each image
    #[argh(switch, short = 'd')]
    pub details: bool,
    /// how many repositories to read at once (default: 8)
    #[argh(option, short = 'j', default = "8")]
    pub parallel: usize,
    /// repositories to list (default: the whole catalog)
    #[argh(positional)]
    pub repositories: Vec<String>,
}

/// Show the managed container of each node: state (running, exited with its
/// code, restarting, absent...), image, digest, container id, start time,
/// uptime, and the node's engine version. On a terminal, a last summary
/// counts the nodes per digest, so a mixed fleet is obvious. Read-only.
#[derive(FromArgs, ArgsInfo)]
#[argh(
    example = "baleine-ps -a",
    example = "baleine-ps 1-10 | jq -r 'select(.state != \"running\") | .node'",
    note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
            else from stdin (node names, or JSON records with a \"node\" field), else from $NODES.",
    error_code(1, "some node could not be asked (its record says where and why)"),
    error_code(2, "usage, configuration or node-list error; nothing was done"),
    error_code(130, "interrupted; every node still got a record")
)]
pub struct PsArgs {
    /// also list the node's other containers (name, image, state)
    #[argh(switch)]
    pub all_containers: bool,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// how many nodes to ask at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    pub parallel: Option<usize>,
    /// give up on a node after this many seconds (default: 30)
    #[argh(option)]
    pub timeout: Option<u64>,
    /// print each node's ssh command and remote script instead of running them
    #[argh(switch)]
    pub dry_run: bool,
    /// nodes: 3, fit03, 1-5, 4-16-2, ~7 (default: stdin, then $NODES)
    #[argh(positional)]
    pub nodes: Vec<String>,
}

/// Run COMMAND inside the managed container of every node in parallel
/// (docker exec, every word quoted) and print one JSON record per node:
/// exit_code, stdout and stderr (capped, with a truncated flag), elapsed_ms.
/// "ok" is true when the command exited 0. A node's timeout kills the
/// command inside the container, not just the connection.
#[derive(FromArgs, ArgsInfo)]
#[argh(
    example = "baleine-exec 1-5 -- uname -r",
    example = "baleine-exec -a --stdin setup.sh -- sh -s",
    example = "baleine-exec -a --output-dir logs -- journalctl -b",
    note = "Nodes come from the arguments (3, fit03, 1-5, 4-16-2, ~7 to exclude, -a for ALL_SCOPE), \
            else from stdin (node names, or JSON records with a \"node\" field), else from $NODES. \
            Words after -- are the command.",
    error_code(1, "the command failed on some node, or could not run there"),
    error_code(2, "usage, configuration or node-list error; nothing was done"),
    error_code(130, "interrupted; every node still got a record")
)]
pub struct ExecArgs {
    /// feed this file to the command's stdin on every node
    #[argh(option)]
    pub stdin: Option<PathBuf>,
    /// bytes of stdout and of stderr kept in each record (default: 65536)
    #[argh(option, default = "64 * 1024")]
    pub max_output: usize,
    /// write each node's full output to DIR/<node>.out and DIR/<node>.err instead
    #[argh(option)]
    pub output_dir: Option<PathBuf>,
    /// every node of ALL_SCOPE (plus or minus the node arguments)
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// how many nodes at once (default: PARALLEL, 64)
    #[argh(option, short = 'j')]
    pub parallel: Option<usize>,
    /// kill the command after this many seconds (default: 300)
    #[argh(option)]
    pub timeout: Option<u64>,
    /// print each node's ssh command and remote script instead of running them
    #[argh(switch)]
    pub dry_run: bool,
    /// nodes: 3, fit03, 1-5, 4-16-2, ~7 (default: stdin, then $NODES)
    #[argh(positional)]
    pub nodes: Vec<String>,
}

/// The login shell of the container user on R2Lab nodes: it puts whoever
/// logs in as container@fitNN inside the managed container running on that
/// node, as if the container were the machine. Without arguments it starts
/// the container's bash (else sh) on a terminal; with -c it runs the command
/// string there, stdin, stdout, stderr and exit status passing through, so
/// ssh commands, scp, sftp and rsync work.
#[derive(FromArgs, ArgsInfo)]
#[argh(
    example = "ssh container@fit03",
    example = "ssh container@fit03 'echo \"a  b\"; exit 7'",
    example = "tar c data | ssh container@fit03 'tar x -C /tmp'",
    note = "sshd starts rdsh as a login shell (argv[0] may start with -). The container \
            (CONTAINER_NAME) and the docker command (DOCKER) come from /etc/baleine/baleine.conf \
            only: neither arguments nor the environment can point rdsh elsewhere. rdsh replaces \
            itself with docker, so signals, window size and the terminal belong to the real program.",
    error_code(1, "no managed container, or it is not running, or docker is unreachable (one line on stderr says which)"),
    error_code(2, "rdsh was started with arguments other than -c COMMAND")
)]
pub struct RdshArgs {
    /// run this command string in the container with sh -c (what sshd does for ssh commands, scp, sftp and rsync)
    #[argh(option, short = 'c')]
    pub command: Option<String>,
}

/// The fleet options every node tool shares, gathered the same way for each.
macro_rules! fleet_options {
    ($($tool:ty),*) => {$(
        impl $tool {
            pub fn fleet_options(&self) -> crate::cli::FleetOptions {
                crate::cli::FleetOptions {
                    nodes: self.nodes.clone(),
                    all: self.all,
                    parallel: self.parallel,
                    timeout: self.timeout,
                    dry_run: self.dry_run,
                }
            }
        }
    )*};
}

fleet_options!(DeployArgs, DestroyArgs, SaveArgs, PsArgs, ExecArgs);
