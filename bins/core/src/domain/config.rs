//! baleine.conf: settings shared by every tool, from layered files and the environment.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::domain::nodes::{self, NodeName, NodeNaming};

pub const SYSTEM_CONFIG: &str = "/etc/baleine/baleine.conf";
/// Names one more config file, read last; it must exist since the user asked for it.
pub const CONFIG_ENV_VAR: &str = "BALEINE_CONFIG";
/// `BALEINE_PARALLEL=8` overrides `PARALLEL` from the files.
pub const ENV_PREFIX: &str = "BALEINE_";

/// One configuration key, all of it in one place: its name, its default,
/// what it is for (baleine.conf(5) is generated from this), whether baleine
/// 0.8 read it from a plain environment variable too, and how its value
/// enters the [`Config`]. Adding a key is adding a row to [`KEYS`].
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub description: &'static str,
    /// One of 0.8's keys, which also read a plain environment variable of
    /// their name (`REGISTRY_URL=... baleine list`), as 0.8's dotenv did.
    /// Only these: names like SSH, DOCKER or PARALLEL are other programs'
    /// variables (GNU parallel reads $PARALLEL) and would silently
    /// redirect a deploy.
    pub plain_env: bool,
    /// Puts the value into the configuration; an invalid value is the
    /// problem, blamed on where the value came from. A key whose meaning
    /// depends on others reads their raw values in `settings`, or what an
    /// earlier row put in the configuration.
    apply: fn(&mut Config, &str, &Settings) -> Result<(), String>,
}

/// Every key, in the order baleine.conf(5) lists them and they are
/// applied. BALEINE_<KEY> overrides the files (and, for 0.8's keys, so does
/// the plain <KEY>).
pub const KEYS: &[Key] = &[
    Key {
        name: "REGISTRY_URL",
        // Where the gateway's repo listens (bins/gateway: the testbed-side
        // name only, not every address), as the nodes also reach it. 0.8
        // said "faraday", which only worked while the registry listened
        // everywhere.
        default: "faraday.repo",
        description: "host[:port] of the registry that baleine-list reads and baleine-save checks, as the gateway reaches it",
        plain_env: true,
        apply: |config, url, settings| {
            config.registry_url = registry_url(url, settings)?;
            Ok(())
        },
    },
    Key {
        name: "SAVE_URL",
        default: "faraday.repo",
        description: "host of the same registry as the nodes reach it; saved images are named SAVE_URL[:SAVE_PORT]/NAME:TAG",
        plain_env: true,
        apply: |config, value, _| {
            config.save_url = value.to_owned();
            Ok(())
        },
    },
    Key {
        name: "REGISTRY_PROTOCOL",
        default: "http://",
        description: "http:// or https://, for REGISTRY_URL",
        plain_env: true,
        apply: |config, protocol, settings| {
            config.registry_protocol = match settings.scheme_of_registry_url() {
                Some(scheme) => format!("{scheme}://"),
                None => match protocol {
                    "http://" | "https://" => protocol.to_owned(),
                    "http" | "https" => format!("{protocol}://"),
                    other => return Err(format!("{other:?}: http:// or https://")),
                },
            };
            Ok(())
        },
    },
    Key {
        name: "REGISTRY_ADMIN_URL",
        default: "unix:/run/baleine-admin/registry.sock",
        description: "where the repo registry's second instance listens, over the same storage with deletes enabled (bins/gateway): unix:PATH, a socket in a directory only the baleine-admin group may enter, so that only its members can delete (or host:port, over http, for a registry of one's own); the one baleine-rmi deletes through",
        plain_env: false,
        apply: |config, value, _| {
            match value.strip_prefix("unix:") {
                Some(path) if !path.starts_with('/') => {
                    return Err(format!("{value:?}: unix: and an absolute path"))
                }
                _ => {}
            }
            config.registry_admin_url = value.to_owned();
            Ok(())
        },
    },
    Key {
        name: "DEFAULT_BOOTSTRAP_IMAGE",
        default: "baleine",
        description: "the rhubarbe image (an ndz name or path, not a Docker image) loaded by baleine-deploy --bootstrap default",
        plain_env: true,
        apply: |config, value, _| {
            config.default_bootstrap_image = rhubarbe_image(value)?;
            Ok(())
        },
    },
    Key {
        name: "SAVE_PORT",
        default: "",
        description: "port of SAVE_URL; the protocol's default port (80 for http, 443 for https, as 0.8's example config sets) is left out of image names, so saved names do not change with the upgrade",
        plain_env: true,
        apply: |config, value, settings| {
            let port = unless_empty(|port| {
                port.parse::<u16>()
                    .ok()
                    .filter(|&port| port > 0)
                    .ok_or_else(|| "not a port number (1-65535)".to_owned())
            })(value)?;
            config.save_port = port.filter(|&port| !settings.is_default_port(port));
            Ok(())
        },
    },
    Key {
        name: "DNS_ADDR",
        default: "",
        description: "when set, the containers' DNS server (adds --dns ADDR to the run options); when empty, the containers use the node's resolvers (0.8 used a built-in 192.168.3.100)",
        plain_env: true,
        apply: |config, value, _| {
            config.dns_addr =
                unless_empty(|address| address.parse().map_err(|_| "not an IP address".to_owned()))(value)?;
            Ok(())
        },
    },
    Key {
        name: "SSH",
        default: "ssh",
        description: "the ssh client command line, split like a shell would, e.g. ssh -F /etc/baleine/ssh_config",
        plain_env: false,
        apply: |config, value, _| {
            config.ssh = command(value)?;
            Ok(())
        },
    },
    Key {
        name: "SSH_USER",
        default: "root",
        description: "the user baleine logs in as on the nodes (empty: ssh's own choice)",
        plain_env: false,
        apply: |config, value, _| {
            config.ssh_user = unless_empty(plain_name)(value)?;
            Ok(())
        },
    },
    Key {
        name: "CONTAINER_NAME",
        default: "container",
        description: "the one container baleine manages on each node; nothing else is ever touched",
        plain_env: false,
        apply: |config, value, _| {
            config.container_name = plain_name(value)?;
            Ok(())
        },
    },
    Key {
        name: "DOCKER",
        default: "docker",
        description: "the docker command on the nodes",
        plain_env: false,
        apply: |config, value, _| {
            config.docker = command(value)?;
            Ok(())
        },
    },
    Key {
        name: "GATEWAY_DOCKER",
        default: "docker",
        description: "the docker command on the gateway, which baleine-build builds and pushes with (unless --on NODE)",
        plain_env: false,
        apply: |config, value, _| {
            config.gateway_docker = command(value)?;
            Ok(())
        },
    },
    Key {
        name: "RUN_OPTIONS",
        default: "-v /home/container/container_fs:/var -v /lib/modules:/lib/modules \
                  -v /var/run/dbus:/var/run/dbus -v /sys/fs/cgroup:/sys/fs/cgroup \
                  --network=host --privileged --cap-add=ALL",
        description: "docker run options of every deploy, before --options (R2Lab's defaults)",
        plain_env: false,
        apply: |config, value, _| {
            config.configured_run_options = words(value)?;
            Ok(())
        },
    },
    Key {
        name: "NODE_PREFIX",
        default: "fit",
        description: "how node numbers become names: 3 becomes PREFIX03",
        plain_env: false,
        apply: |config, prefix, _| {
            if !prefix.is_empty() {
                nodes::validate_node_name(prefix).map_err(|error| error.to_string())?;
            }
            config.node_naming = NodeNaming {
                prefix: prefix.to_owned(),
            };
            Ok(())
        },
    },
    Key {
        name: "ALL_SCOPE",
        default: "1-37",
        description: "the nodes of -a/--all, as node specs",
        plain_env: false,
        // After NODE_PREFIX, whose naming it expands with.
        apply: |config, specs, _| {
            config.all_nodes = nodes::expand_specs(specs.split_whitespace(), &config.node_naming)
                .map_err(|error| error.to_string())?;
            Ok(())
        },
    },
    Key {
        name: "PARALLEL",
        default: "64",
        description: "how many nodes a tool works on at once",
        plain_env: false,
        apply: |config, value, _| {
            config.parallel = positive_integer(value)?;
            Ok(())
        },
    },
    Key {
        name: "SAVE_PARALLEL",
        default: "8",
        description: "how many nodes baleine-save commits and pushes at once: the registry takes many simultaneous pushes of the same layers badly",
        plain_env: false,
        apply: |config, value, _| {
            config.save_parallel = positive_integer(value)?;
            Ok(())
        },
    },
    Key {
        name: "SAVE_NAMESPACE",
        default: "",
        description: "a prefix for the names baleine-save saves under (%u: the user's login name), so that users of a shared gateway never collide; empty (0.8's behaviour): none",
        plain_env: false,
        apply: |config, value, _| {
            config.save_namespace = unless_empty(text)(value)?;
            Ok(())
        },
    },
    Key {
        name: "RHUBARBE",
        default: "rhubarbe",
        description: "the rhubarbe command, for --bootstrap",
        plain_env: false,
        apply: |config, value, _| {
            config.rhubarbe = command(value)?;
            Ok(())
        },
    },
    Key {
        name: "SSH_CONNECT_TIMEOUT",
        default: "10",
        description: "seconds ssh waits for a node to answer",
        plain_env: false,
        apply: |config, seconds, _| {
            config.ssh_connect_timeout = positive_integer(seconds).map(Duration::from_secs)?;
            Ok(())
        },
    },
    Key {
        name: "SSH_CONTROL_PERSIST",
        default: "60",
        description: "seconds an idle ssh connection to a node is kept for the next tool of a pipeline or the next run (OpenSSH ControlPersist, in a private directory); 0 opens a new connection every time",
        plain_env: false,
        apply: |config, seconds, _| {
            config.ssh_control_persist = seconds
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| "not a number of seconds".to_owned())?;
            Ok(())
        },
    },
    Key {
        name: "REGISTRY_USER",
        default: "",
        description: "user for a registry that requires one (else docker login's credentials are used)",
        plain_env: false,
        apply: |config, value, _| {
            config.registry_user = unless_empty(text)(value)?;
            Ok(())
        },
    },
    Key {
        name: "REGISTRY_PASSWORD",
        default: "",
        description: "password of REGISTRY_USER; in a file others can read it draws a warning: prefer REGISTRY_PASSWORD_FILE or docker login",
        plain_env: false,
        // REGISTRY_PASSWORD_FILE, when set, wins (its row comes after).
        apply: |config, value, settings| {
            if settings.value("REGISTRY_PASSWORD_FILE").is_empty() {
                settings.warn_if_readable_by_others("REGISTRY_PASSWORD");
                config.registry_password = unless_empty(text)(value)?;
            }
            Ok(())
        },
    },
    Key {
        name: "REGISTRY_PASSWORD_FILE",
        default: "",
        description: "a file holding the password of REGISTRY_USER (its first line), readable by its owner only, as ssh wants of a key; refused otherwise",
        plain_env: false,
        apply: |config, path, _| {
            if !path.is_empty() {
                config.registry_password = Some(password_file(path)?);
            }
            Ok(())
        },
    },
];

/// The keys of baleine 0.8 (see [`Key::plain_env`]).
pub fn plain_env_keys() -> Vec<&'static str> {
    KEYS.iter()
        .filter(|key| key.plain_env)
        .map(|key| key.name)
        .collect()
}

/// REGISTRY_URL's value: `host[:port]`. "http://faraday:5000" means what it
/// says: the scheme goes to REGISTRY_PROTOCOL's place, unless that says
/// otherwise.
fn registry_url(url: &str, settings: &Settings) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(url.to_owned());
    };
    let protocol = format!("{scheme}://");
    // "https" and "https://" are the same choice.
    let configured = settings
        .0
        .get("REGISTRY_PROTOCOL")
        .map(|(v, o)| (format!("{}://", v.trim_end_matches("://")), o));
    match configured.as_ref().map(|(v, o)| (v.as_str(), *o)) {
        Some((p, _)) if p == protocol => Ok(rest.trim_end_matches('/').to_owned()),
        Some((_, Origin::Default)) if scheme == "http" || scheme == "https" => {
            Ok(rest.trim_end_matches('/').to_owned())
        }
        _ => Err(format!(
            "{url:?} names its scheme, which REGISTRY_PROTOCOL contradicts: \
             give host[:port] only, or make them agree"
        )),
    }
}

/// Where a setting's value came from, so later errors can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: PathBuf, line: usize },
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// One config file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    /// The environment variable that named this file; such a file must exist.
    pub named_by: Option<&'static str>,
}

impl Source {
    /// A file that is skipped when missing.
    pub fn optional(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            named_by: None,
        }
    }

    pub fn named_by(variable: &'static str, path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            named_by: Some(variable),
        }
    }
}

#[derive(Debug)]
pub enum ConfigError {
    Read {
        file: Source,
        error: io::Error,
    },
    Syntax {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    Invalid {
        key: &'static str,
        origin: Origin,
        problem: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { file, error } => match file.named_by {
                Some(variable) => write!(f, "{variable}={}: {error}", file.path.display()),
                None => write!(f, "{}: {error}", file.path.display()),
            },
            Self::Syntax {
                path,
                line,
                problem,
            } => write!(f, "{}:{line}: {problem}", path.display()),
            Self::Invalid {
                key,
                origin,
                problem,
            } => write!(f, "{key} (from {origin}): {problem}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `host[:port]` whose catalog lists the available images.
    pub registry_url: String,
    /// Registry address given to the nodes, which push saved images there.
    pub save_url: String,
    pub registry_protocol: String,
    /// `host:port` of the loopback-only instance that deletes (baleine-rmi).
    pub registry_admin_url: String,
    /// A rhubarbe image name (or path), not a Docker reference.
    pub default_bootstrap_image: String,
    pub save_port: Option<u16>,
    pub dns_addr: Option<IpAddr>,
    /// The ssh client command line, before any baleine options.
    pub ssh: Vec<String>,
    /// `None` lets ssh choose the user (e.g. from `~/.ssh/config`).
    pub ssh_user: Option<String>,
    pub container_name: String,
    pub docker: Vec<String>,
    /// The gateway's own docker, for baleine-build.
    pub gateway_docker: Vec<String>,
    /// RUN_OPTIONS as configured; [`Config::run_options`] adds the DNS server.
    pub configured_run_options: Vec<String>,
    pub node_naming: NodeNaming,
    /// The nodes ALL_SCOPE selects, expanded.
    pub all_nodes: Vec<NodeName>,
    /// How many nodes are worked on at once.
    pub parallel: usize,
    /// How many nodes save at once.
    pub save_parallel: usize,
    /// The prefix of saved names, if any (`%u`: the login name).
    pub save_namespace: Option<String>,
    pub rhubarbe: Vec<String>,
    pub ssh_connect_timeout: Duration,
    /// How long idle connections are kept for reuse; zero: no reuse.
    pub ssh_control_persist: Duration,
    pub registry_user: Option<String>,
    pub registry_password: Option<String>,
    origins: HashMap<&'static str, Origin>,
}

impl Config {
    /// Options for `docker run`.
    pub fn run_options(&self) -> Vec<String> {
        let mut options = self.configured_run_options.clone();
        if let Some(dns) = self.dns_addr {
            options.extend(["--dns".to_owned(), dns.to_string()]);
        }
        options
    }

    /// Where the value of `key` (e.g. `"PARALLEL"`) came from; `None` for unknown keys.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.origins.get(key)
    }
}

/// The user running us, for SAVE_NAMESPACE's `%u`.
pub fn login_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.name)
        .unwrap_or_else(|| nix::unistd::getuid().to_string())
}

/// The most a configuration file may hold.
const MAX_CONFIG_FILE: u64 = 1024 * 1024;

/// Loads the configuration from the standard files and the process environment.
pub fn load() -> Result<Config, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    load_from(&standard_sources(&env), &env)
}

/// The system file, the user's file and the one `BALEINE_CONFIG` names, in reading order.
pub fn standard_sources(env: &dyn Fn(&str) -> Option<String>) -> Vec<Source> {
    // An empty variable counts as unset, and a relative XDG_CONFIG_HOME is
    // ignored, as the XDG spec says.
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    let user_config_dir = set("XDG_CONFIG_HOME")
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| Path::new(&home).join(".config")));
    let mut sources = vec![Source::optional(SYSTEM_CONFIG)];
    sources.extend(user_config_dir.map(|dir| Source::optional(dir.join("baleine/baleine.conf"))));
    sources.extend(set(CONFIG_ENV_VAR).map(|path| Source::named_by(CONFIG_ENV_VAR, path)));
    sources
}

/// Reads `sources` in order, later ones overriding earlier ones, then lets
/// `env` override any key.
pub fn load_from(
    sources: &[Source],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut settings = Settings::defaults();
    for source in sources {
        // Never blocks: a FIFO under the name is refused, not waited on.
        let read = crate::domain::own_dir::read_regular_file(&source.path, MAX_CONFIG_FILE)
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            });
        let text = match read {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound && source.named_by.is_none() => {
                continue
            }
            Err(error) => {
                return Err(ConfigError::Read {
                    file: source.clone(),
                    error,
                })
            }
        };
        settings.read(&source.path, &text)?;
    }
    // BALEINE_-prefixed, and plain for 0.8's keys only (see Key::plain_env);
    // the BALEINE_ form wins over the plain one.
    for key in KEYS {
        let plain = key.plain_env.then(|| key.name.to_owned());
        for var in plain
            .into_iter()
            .chain([format!("{ENV_PREFIX}{}", key.name)])
        {
            if let Some(value) = env(&var) {
                settings.0.insert(key.name, (value, Origin::Env(var)));
            }
        }
    }
    settings.into_config()
}

/// The configuration of one file's text alone (no environment), as if it
/// were the file at `path`: for tests and the fuzzer.
pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut settings = Settings::defaults();
    settings.read(path, text)?;
    settings.into_config()
}

/// The raw value and origin of every key.
struct Settings(HashMap<&'static str, (String, Origin)>);

impl Settings {
    fn defaults() -> Settings {
        Settings(
            KEYS.iter()
                .map(|key| (key.name, (key.default.to_owned(), Origin::Default)))
                .collect(),
        )
    }

    /// Applies the settings of one file's text.
    fn read(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        for (key, value, line) in parse_file(path, text)? {
            let origin = Origin::File {
                path: path.to_owned(),
                line,
            };
            self.0.insert(key, (value, origin));
        }
        Ok(())
    }

    /// The raw value of `key`: every known key has one (its default at
    /// least); a misspelt one reads as empty.
    fn value(&self, key: &str) -> &str {
        self.0.get(key).map_or("", |(value, _)| value.as_str())
    }

    /// `http` or `https`, when REGISTRY_URL names its scheme.
    fn scheme_of_registry_url(&self) -> Option<&str> {
        match self.value("REGISTRY_URL").split_once("://") {
            Some((scheme @ ("http" | "https"), _)) => Some(scheme),
            _ => None,
        }
    }

    /// The configuration: every key's value applied, row by row of [`KEYS`].
    fn into_config(self) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for key in KEYS {
            let (value, origin) = self
                .0
                .get(key.name)
                .map_or(("", &Origin::Default), |(value, origin)| {
                    (value.as_str(), origin)
                });
            (key.apply)(&mut config, value, &self).map_err(|problem| ConfigError::Invalid {
                key: key.name,
                origin: origin.clone(),
                problem,
            })?;
        }
        config.origins = self
            .0
            .into_iter()
            .map(|(key, (_, origin))| (key, origin))
            .collect();
        Ok(config)
    }
}

impl Settings {
    /// Whether `port` is the default of the registry protocol: docker names
    /// such a registry without it, and so did 0.8's saved images.
    fn is_default_port(&self, port: u16) -> bool {
        let scheme = self
            .0
            .get("REGISTRY_URL")
            .and_then(|(url, _)| url.split_once("://").map(|(s, _)| s.to_owned()))
            .or_else(|| self.0.get("REGISTRY_PROTOCOL").map(|(p, _)| p.clone()))
            .unwrap_or_default();
        match scheme.trim_end_matches("://") {
            "https" => port == 443,
            _ => port == 80,
        }
    }

    /// A secret set in a file that other users can read is not secret:
    /// say so (ssh refuses such key files; 0.8 configs hold passwords, so
    /// this warns rather than breaks them).
    fn warn_if_readable_by_others(&self, key: &'static str) {
        use std::os::unix::fs::PermissionsExt;
        let Some((value, Origin::File { path, line })) = self.0.get(key) else {
            return;
        };
        if value.is_empty() {
            return;
        }
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                log::warn!(
                    "{}:{line}: {key} is in a file other users can read (mode {mode:o}): \
                     use REGISTRY_PASSWORD_FILE (a file only you can read) or docker login",
                    path.display()
                );
            }
        }
    }
}

/// The first line of a password file that only its owner may read.
fn password_file(path: &str) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{path} is readable by others (mode {mode:o}): chmod 600 it"
        ));
    }
    // A password is one short line: read no more than that, and never
    // wait on a FIFO swapped in since.
    let bytes = crate::domain::own_dir::read_regular_file(Path::new(path), 4096)
        .map_err(|e| format!("{path}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// A rhubarbe image is a name or path handed to `rhubarbe load -i`, one
/// argument: not empty, no option look-alike, no control characters.
fn rhubarbe_image(value: &str) -> Result<String, String> {
    if value.is_empty() || value.starts_with('-') || value.chars().any(char::is_control) {
        return Err(
            "a rhubarbe image name or path (not empty, not starting with '-', no control characters)"
                .to_owned(),
        );
    }
    Ok(value.to_owned())
}

fn text(value: &str) -> Result<String, String> {
    Ok(value.to_owned())
}

/// An empty value means "none", so only non-empty ones are converted.
fn unless_empty<T>(
    convert: impl FnOnce(&str) -> Result<T, String>,
) -> impl FnOnce(&str) -> Result<Option<T>, String> {
    move |value| match value {
        "" => Ok(None),
        _ => convert(value).map(Some),
    }
}

fn words(value: &str) -> Result<Vec<String>, String> {
    shell_words::split(value).map_err(|error| format!("cannot split into words: {error}"))
}

fn command(value: &str) -> Result<Vec<String>, String> {
    let words = words(value)?;
    if words.is_empty() {
        return Err("empty command".to_owned());
    }
    Ok(words)
}

fn positive_integer<T: FromStr + Default + PartialEq>(value: &str) -> Result<T, String> {
    value
        .parse::<T>()
        .ok()
        .filter(|number| *number != T::default())
        .ok_or_else(|| "not a positive integer".to_owned())
}

/// Container and user names go into remote commands and `user@host`
/// arguments, so they may not start with `-` nor hold shell metacharacters.
fn plain_name(value: &str) -> Result<String, String> {
    let mut chars = value.chars();
    let is_valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !is_valid {
        return Err(
            "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
                .to_owned(),
        );
    }
    Ok(value.to_owned())
}

/// The known settings of one file as (key, value, line number); unknown keys
/// are only warned about so that newer files still work with older tools.
fn parse_file(path: &Path, text: &str) -> Result<Vec<(&'static str, String, usize)>, ConfigError> {
    let mut settings = Vec::new();
    for (line_number, line) in (1..).zip(text.lines()) {
        let parsed = parse_line(line).map_err(|problem| ConfigError::Syntax {
            path: path.to_owned(),
            line: line_number,
            problem,
        })?;
        let Some((key, value)) = parsed else { continue };
        match KEYS.iter().find(|known| known.name == key) {
            Some(known) => settings.push((known.name, value, line_number)),
            None => log::warn!(
                "{}:{line_number}: unknown key {key:?} (ignored)",
                path.display()
            ),
        }
    }
    Ok(settings)
}

/// `None` for blank and comment lines.
fn parse_line(line: &str) -> Result<Option<(&str, String)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (key, value) = line.split_once('=').ok_or("missing '='")?;
    let key = key.trim();
    let mut key_chars = key.chars();
    let is_valid_key = key_chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && key_chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !is_valid_key {
        return Err(format!("invalid key {key:?}"));
    }
    let value = value.trim_start();
    let value = match value.strip_prefix('"') {
        Some(quoted) => unquote(quoted)?,
        None => value
            .split_once('#')
            .map_or(value, |(before, _)| before)
            .trim_end()
            .to_owned(),
    };
    Ok(Some((key, value)))
}

/// `after_quote` is what follows the opening quote.
fn unquote(after_quote: &str) -> Result<String, String> {
    let mut value = String::new();
    let mut chars = after_quote.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => {
                let rest = after_quote[index + 1..].trim_start();
                if !rest.is_empty() && !rest.starts_with('#') {
                    return Err("trailing text after closing quote".to_owned());
                }
                return Ok(value);
            }
            // As in shell double quotes, a backslash only escapes `"` and `\`,
            // so Windows-like paths and regexes survive unchanged.
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\'))) => value.push(escaped),
                Some((_, other)) => value.extend(['\\', other]),
                None => break,
            },
            _ => value.push(c),
        }
    }
    Err("unterminated quote".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const R2LAB_FILE: &str = r#"#URL that will be called when listing available images
REGISTRY_URL = "faraday"
#URL that will be transmitted to the slave nodes to save images
SAVE_URL = "faraday.repo"
REGISTRY_PROTOCOL = "http://"
DEFAULT_BOOTSTRAP_IMAGE="baleine"
"#;

    /// A scratch directory removed on drop, so tests never touch real config files.
    struct ScratchDir(PathBuf);

    impl ScratchDir {
        fn new() -> Self {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "baleine-config-test-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(name);
            fs::create_dir_all(&path).expect("cannot create scratch directory");
            Self(path)
        }

        fn file(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, text).expect("cannot write scratch file");
            path
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load_text(text: &str) -> Result<Config, String> {
        let dir = ScratchDir::new();
        let path = dir.file("baleine.conf", text);
        load_from(&[Source::optional(path)], &no_env).map_err(|error| {
            error
                .to_string()
                .replace(&dir.0.display().to_string(), "DIR")
        })
    }

    fn loaded(text: &str) -> Config {
        load_text(text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn value_of(line: &str) -> Result<Option<String>, String> {
        parse_line(line).map(|parsed| parsed.map(|(_, value)| value))
    }

    #[test]
    fn defaults() {
        let config = load_from(&[], &no_env).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.registry_url, "faraday.repo");
        assert_eq!(config.save_url, "faraday.repo");
        assert_eq!(config.registry_protocol, "http://");
        assert_eq!(config.default_bootstrap_image, "baleine");
        assert_eq!(config.save_port, None);
        assert_eq!(config.dns_addr, None);
        assert_eq!(config.ssh, ["ssh"]);
        assert_eq!(config.ssh_user.as_deref(), Some("root"));
        assert_eq!(config.container_name, "container");
        assert_eq!(config.docker, ["docker"]);
        assert_eq!(config.run_options().len(), 11);
        assert_eq!(
            config.run_options()[..2],
            ["-v", "/home/container/container_fs:/var"]
        );
        assert_eq!(
            config.run_options().last().map(String::as_str),
            Some("--cap-add=ALL")
        );
        assert_eq!(config.node_naming, NodeNaming::default());
        assert_eq!(config.all_nodes.len(), 37);
        assert_eq!(config.all_nodes.last().map(NodeName::as_str), Some("fit37"));
        assert_eq!(config.parallel, 64);
        assert_eq!(config.registry_protocol, "http://");
        assert_eq!(config.rhubarbe, ["rhubarbe"]);
        assert_eq!(config.ssh_connect_timeout, Duration::from_secs(10));
        assert_eq!(config.registry_user, None);
        assert_eq!(config.registry_password, None);
        assert_eq!(config.origin("PARALLEL"), Some(&Origin::Default));
        assert_eq!(config.origin("NOPE"), None);
    }

    #[test]
    fn parses_the_original_r2lab_file() {
        let dir = ScratchDir::new();
        let path = dir.file("baleine.conf", R2LAB_FILE);
        let config = load_from(&[Source::optional(&path)], &no_env)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.registry_url, "faraday");
        assert_eq!(config.save_url, "faraday.repo");
        assert_eq!(config.registry_protocol, "http://");
        assert_eq!(config.default_bootstrap_image, "baleine");
        assert_eq!(
            config.origin("SAVE_URL"),
            Some(&Origin::File { path, line: 4 })
        );
    }

    #[test]
    fn comments_quotes_and_escapes() {
        assert_eq!(value_of(""), Ok(None));
        assert_eq!(value_of("   # KEY = x"), Ok(None));
        assert_eq!(value_of("KEY=plain"), Ok(Some("plain".into())));
        assert_eq!(
            value_of("  KEY   =  two words  # comment"),
            Ok(Some("two words".into()))
        );
        assert_eq!(
            value_of(r#"KEY = "a # b = c"  # comment"#),
            Ok(Some("a # b = c".into()))
        );
        assert_eq!(
            value_of(r#"KEY = "say \"hi\" \\ \n""#),
            Ok(Some(r#"say "hi" \ \n"#.into()))
        );
        assert_eq!(value_of(r#"KEY = """#), Ok(Some(String::new())));
        assert_eq!(value_of("KEY ="), Ok(Some(String::new())));
        assert_eq!(
            value_of(r#"SSH = ssh -o "ProxyJump=gw""#),
            Ok(Some(r#"ssh -o "ProxyJump=gw""#.into()))
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let cases = [
            ("NO_EQUAL_SIGN", "missing '='"),
            (r#"KEY = "open"#, "unterminated quote"),
            (r#"KEY = "open\""#, "unterminated quote"),
            ("foo bar = 1", "invalid key \"foo bar\""),
            ("lower = 1", "invalid key \"lower\""),
            ("= 1", "invalid key \"\""),
            (r#"KEY = "a" b"#, "trailing text after closing quote"),
        ];
        for (line, problem) in cases {
            let error = load_text(&format!("# comment\nPARALLEL = 2\n{line}\n"));
            assert_eq!(
                error,
                Err(format!("DIR/baleine.conf:3: {problem}")),
                "{line}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_ignored() {
        assert_eq!(loaded("FUTURE_KEY = 1\nPARALLEL = 3\n").parallel, 3);
    }

    #[test]
    fn later_sources_override_earlier_ones_and_env_overrides_all() {
        let dir = ScratchDir::new();
        let system = dir.file(
            "system.conf",
            "PARALLEL = 8\nSSH_USER = alice\nCONTAINER_NAME = box\n",
        );
        let user = dir.file("user.conf", "\nPARALLEL = 16\n");
        let explicit = dir.file("explicit.conf", "SSH_USER = bob\n");
        let sources = [
            Source::optional(&system),
            Source::optional(dir.0.join("missing.conf")),
            Source::optional(&user),
            Source::named_by(CONFIG_ENV_VAR, &explicit),
        ];
        let config = load_from(&sources, &no_env).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            (config.parallel, config.ssh_user.as_deref()),
            (16, Some("bob"))
        );
        assert_eq!(config.container_name, "box");
        assert_eq!(
            config.origin("PARALLEL"),
            Some(&Origin::File {
                path: user,
                line: 2
            })
        );

        let env = |name: &str| (name == "BALEINE_PARALLEL").then(|| "32".to_owned());
        let config = load_from(&sources, &env).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.parallel, 32);
        assert_eq!(
            config.origin("PARALLEL"),
            Some(&Origin::Env("BALEINE_PARALLEL".into()))
        );
        // A bare PARALLEL (GNU parallel's) or CONTAINER_NAME is not ours.
        let env =
            |name: &str| matches!(name, "PARALLEL" | "CONTAINER_NAME").then(|| "-j4".to_owned());
        let config = load_from(&sources, &env).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.container_name, "box");
    }

    #[test]
    fn the_keys_of_0_8_read_plain_variables_too_and_baleine_ones_win() {
        let file = "REGISTRY_URL = faraday\nSAVE_URL = faraday.repo\n";
        let dir = ScratchDir::new();
        let sources = [Source::optional(dir.file("b.conf", file))];
        let env = |name: &str| match name {
            "REGISTRY_URL" => Some("plain:5000".to_owned()),
            "SAVE_URL" => Some("plain.repo".to_owned()),
            "BALEINE_SAVE_URL" => Some("prefixed.repo".to_owned()),
            _ => None,
        };
        let config = load_from(&sources, &env).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.registry_url, "plain:5000");
        assert_eq!(config.save_url, "prefixed.repo");
        assert_eq!(
            config.origin("REGISTRY_URL"),
            Some(&Origin::Env("REGISTRY_URL".into()))
        );
    }

    #[test]
    fn the_default_port_stays_out_of_saved_names() {
        assert_eq!(loaded("SAVE_PORT = 80\n").save_port, None);
        assert_eq!(loaded("SAVE_PORT = 5000\n").save_port, Some(5000));
        assert_eq!(
            loaded("REGISTRY_PROTOCOL = https://\nSAVE_PORT = 80\n").save_port,
            Some(80)
        );
        assert_eq!(
            loaded("REGISTRY_PROTOCOL = https\nSAVE_PORT = 443\n").save_port,
            None
        );
    }

    #[test]
    fn the_bootstrap_image_is_a_rhubarbe_name() {
        assert_eq!(
            loaded("DEFAULT_BOOTSTRAP_IMAGE = u18.04-docker_RC1\n").default_bootstrap_image,
            "u18.04-docker_RC1"
        );
        assert_eq!(
            loaded("DEFAULT_BOOTSTRAP_IMAGE = /var/lib/rhubarbe-images/My Image.ndz\n")
                .default_bootstrap_image,
            "/var/lib/rhubarbe-images/My Image.ndz"
        );
        assert!(load_text("DEFAULT_BOOTSTRAP_IMAGE = -x\n").is_err());
    }

    #[test]
    fn standard_sources_follow_xdg_and_baleine_config() {
        let env_of = |pairs: &'static [(&str, &str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_string())
            }
        };
        assert_eq!(
            standard_sources(&env_of(&[("HOME", "/home/me")])),
            [
                Source::optional(SYSTEM_CONFIG),
                Source::optional("/home/me/.config/baleine/baleine.conf")
            ]
        );
        assert_eq!(
            standard_sources(&env_of(&[
                ("HOME", "/home/me"),
                ("XDG_CONFIG_HOME", "/x"),
                ("BALEINE_CONFIG", "/b.conf")
            ])),
            [
                Source::optional(SYSTEM_CONFIG),
                Source::optional("/x/baleine/baleine.conf"),
                Source::named_by(CONFIG_ENV_VAR, "/b.conf"),
            ]
        );
        assert_eq!(
            standard_sources(&env_of(&[("BALEINE_CONFIG", "")])),
            [Source::optional(SYSTEM_CONFIG)]
        );
        // Empty or relative XDG values are ignored (the XDG spec).
        for xdg in ["", "relative/dir"] {
            let pairs: &'static [(&str, &str)] = match xdg {
                "" => &[("HOME", "/home/me"), ("XDG_CONFIG_HOME", "")],
                _ => &[("HOME", "/home/me"), ("XDG_CONFIG_HOME", "relative/dir")],
            };
            assert_eq!(
                standard_sources(&env_of(pairs))[1],
                Source::optional("/home/me/.config/baleine/baleine.conf")
            );
        }
    }

    #[test]
    fn missing_baleine_config_file_is_an_error() {
        let dir = ScratchDir::new();
        let missing = dir.0.join("missing.conf");
        let error = load_from(&[Source::named_by(CONFIG_ENV_VAR, &missing)], &no_env).map(drop);
        let message = error.map_err(|error| error.to_string());
        assert!(
            message
                .as_ref()
                .is_err_and(|message| message
                    .starts_with(&format!("BALEINE_CONFIG={}: ", missing.display()))),
            "{message:?}"
        );
    }

    #[test]
    fn invalid_values_name_their_origin() {
        let cases = [
            (
                "SAVE_PORT = 70000",
                "SAVE_PORT",
                "not a port number (1-65535)",
            ),
            ("SAVE_PORT = 0", "SAVE_PORT", "not a port number (1-65535)"),
            ("PARALLEL = 0", "PARALLEL", "not a positive integer"),
            (
                "SSH_CONNECT_TIMEOUT = -1",
                "SSH_CONNECT_TIMEOUT",
                "not a positive integer",
            ),
            ("DNS_ADDR = 8.8.8.8; x", "DNS_ADDR", "not an IP address"),
            ("SSH = \"\"", "SSH", "empty command"),
            (
                "SSH = ssh 'unterminated",
                "SSH",
                "cannot split into words: missing closing quote",
            ),
            (
                "CONTAINER_NAME = -x",
                "CONTAINER_NAME",
                "must start with a letter or digit",
            ),
            (
                "SSH_USER = a;b",
                "SSH_USER",
                "must start with a letter or digit",
            ),
            ("ALL_SCOPE = 5-1", "ALL_SCOPE", "invalid node spec \"5-1\""),
            (
                "NODE_PREFIX = -o",
                "NODE_PREFIX",
                "invalid node name \"-o\"",
            ),
            (
                "DEFAULT_BOOTSTRAP_IMAGE = --force",
                "DEFAULT_BOOTSTRAP_IMAGE",
                "a rhubarbe image name or path",
            ),
        ];
        for (line, key, problem) in cases {
            let error = load_text(&format!("\n{line}\n")).map(drop);
            let expected = format!("{key} (from DIR/baleine.conf:2): {problem}");
            assert!(
                error
                    .as_ref()
                    .is_err_and(|error| error.starts_with(&expected)),
                "{line}: {error:?}"
            );
        }
        let env = |name: &str| (name == "BALEINE_PARALLEL").then(|| "many".to_owned());
        let error = load_from(&[], &env)
            .map(drop)
            .map_err(|error| error.to_string());
        assert_eq!(
            error,
            Err(
                "PARALLEL (from environment variable BALEINE_PARALLEL): not a positive integer"
                    .into()
            )
        );
    }

    #[test]
    fn every_key_is_documented() {
        for key in KEYS {
            assert!(
                !key.description.is_empty(),
                "{} has no description for baleine.conf(5)",
                key.name
            );
        }
        let names: std::collections::BTreeSet<&str> = KEYS.iter().map(|k| k.name).collect();
        assert_eq!(names.len(), KEYS.len(), "a key has one row");
        assert_eq!(
            plain_env_keys(),
            [
                "REGISTRY_URL",
                "SAVE_URL",
                "REGISTRY_PROTOCOL",
                "DEFAULT_BOOTSTRAP_IMAGE",
                "SAVE_PORT",
                "DNS_ADDR"
            ]
        );
    }

    #[test]
    fn typed_values() {
        let config = loaded(
            "SAVE_PORT = 5000\nDNS_ADDR = 10.0.0.1\nSSH = ssh -o \"ConnectTimeout=3\" -q\n\
             SSH_USER = \"\"\nALL_SCOPE = 1-3 ~2\nNODE_PREFIX = node\nRUN_OPTIONS =\nREGISTRY_USER = me\n",
        );
        assert_eq!(config.save_port, Some(5000));
        assert_eq!(config.ssh, ["ssh", "-o", "ConnectTimeout=3", "-q"]);
        assert_eq!(config.ssh_user, None);
        assert_eq!(config.all_nodes, ["node01", "node03"]);
        assert_eq!(config.run_options(), ["--dns", "10.0.0.1"]);
        assert_eq!(config.registry_user.as_deref(), Some("me"));
    }

    #[test]
    fn a_registry_url_with_its_scheme_is_understood() {
        let config = from_text(
            Path::new("t.conf"),
            "REGISTRY_URL = https://r.example:5000/\n",
        )
        .unwrap();
        assert_eq!(
            (
                config.registry_protocol.as_str(),
                config.registry_url.as_str()
            ),
            ("https://", "r.example:5000")
        );
        let config = from_text(Path::new("t.conf"), "REGISTRY_URL = http://faraday\n").unwrap();
        assert_eq!(
            (
                config.registry_protocol.as_str(),
                config.registry_url.as_str()
            ),
            ("http://", "faraday")
        );
        let clash = from_text(
            Path::new("t.conf"),
            "REGISTRY_PROTOCOL = http://\nREGISTRY_URL = https://faraday\n",
        );
        assert!(clash
            .unwrap_err()
            .to_string()
            .contains("REGISTRY_PROTOCOL contradicts"));
        assert!(from_text(Path::new("t.conf"), "REGISTRY_PROTOCOL = ftp://\n").is_err());
        let agreed = from_text(
            Path::new("t.conf"),
            "REGISTRY_PROTOCOL = https\nREGISTRY_URL = https://r:5000\n",
        )
        .unwrap();
        assert_eq!(agreed.registry_url, "r:5000");
    }
}
