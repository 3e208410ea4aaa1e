//! The ssh command line: from the configuration and a node name to the argv we run, with kept connections.
//!
//! This is where a node name becomes an ssh destination: after `--`, so it
//! can never be read as an option (names are validated before, in `nodes`).

use crate::domain::config::Config;
use crate::domain::nodes::NodeName;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The ssh client command line, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Ssh {
    /// The client and its options; empty for [`Ssh::here`].
    base: Vec<String>,
    /// Where connections kept for reuse live, and for how long.
    reuse: Option<Reuse>,
    /// Kept connections are opened by an `ssh -N -f` of their own, not by
    /// a session (see `needs_separate_master`).
    separate_master: bool,
}

#[derive(Debug, Clone)]
struct Reuse {
    dir: PathBuf,
    persist: Duration,
}

impl Ssh {
    pub fn from_config(config: &Config) -> Ssh {
        let mut base = config.ssh.clone();
        // Never prompt: a password or host-key question would hang a worker.
        base.extend(["-o".into(), "BatchMode=yes".into()]);
        base.extend([
            "-o".into(),
            format!(
                "ConnectTimeout={}",
                config.ssh_connect_timeout.as_secs().max(1)
            ),
        ]);
        if let Some(user) = &config.ssh_user {
            base.extend(["-l".into(), user.clone()]);
        }
        let mlkem = prefer_mlkem(&config.ssh);
        if mlkem {
            base.extend(["-o".into(), format!("KexAlgorithms=^{MLKEM}")]);
        }
        let reuse = control_dir()
            .filter(|_| !config.ssh_control_persist.is_zero())
            .map(|dir| Reuse {
                dir,
                persist: config.ssh_control_persist,
            });
        let separate_master = reuse.is_some() && needs_separate_master(&base, mlkem);
        Ssh {
            base,
            reuse,
            separate_master,
        }
    }

    /// The gateway itself as the "node": a session's command runs in a
    /// local `sh -c`, with the same timer, marks and cleanup as on a node
    /// (baleine-build with the gateway's docker).
    pub fn here() -> Ssh {
        Ssh {
            base: Vec::new(),
            reuse: None,
            separate_master: false,
        }
    }

    /// The full argv running `remote_command` on `node`. `--` ends ssh's
    /// options, a second guard (after name validation) against a node name
    /// ever being read as an option.
    pub fn argv(&self, node: &NodeName, remote_command: &str) -> Vec<String> {
        if self.base.is_empty() {
            return vec!["sh".into(), "-c".into(), remote_command.into()];
        }
        let mut argv = self.base.clone();
        match &self.reuse {
            // The session's own connection becomes the kept one if none is
            // open (one process, one handshake): OpenSSH puts a persisting
            // master's stdio on /dev/null, so it holds none of our pipes,
            // unless it keeps its stderr (see `needs_separate_master`).
            Some(reuse) if !self.separate_master => argv.extend(connection_reuse(
                "auto",
                &reuse.socket(&self.base, node),
                reuse.persist,
            )),
            // Use a kept connection if there is one, never become one.
            // Without reuse, no multiplexing at all: a user's `ControlMaster
            // auto` must not turn our sessions into masters either.
            reuse => {
                let path = match reuse {
                    Some(reuse) => reuse.socket(&self.base, node).display().to_string(),
                    None => "none".into(),
                };
                argv.extend([
                    "-o".into(),
                    "ControlMaster=no".into(),
                    "-o".into(),
                    format!("ControlPath={path}"),
                ]);
            }
        }
        argv.extend(["--".into(), node.to_string(), remote_command.into()]);
        argv
    }
}

/// OpenSSH's hybrid ML-KEM key exchange (9.9+, the default from 10.0): as
/// cheap for the gateway as curve25519, and still post-quantum.
const MLKEM: &str = "mlkem768x25519-sha256";

/// Whether to put ML-KEM first: the local ssh offers it, and the user chose
/// no key exchange of their own (in SSH's words or in the ssh configuration
/// files). `^` puts it first and keeps the others: never a classical-only
/// exchange, and nothing changes where ssh lacks it.
fn prefer_mlkem(ssh: &[String]) -> bool {
    let Some(program) = ssh.first() else {
        return false;
    };
    let chooses = |text: &str| {
        text.lines().any(|line| {
            line.trim_start()
                .to_ascii_lowercase()
                .starts_with("kexalgorithms")
        })
    };
    if ssh
        .iter()
        .any(|w| w.to_ascii_lowercase().contains("kexalgorithms"))
    {
        return false;
    }
    // The configuration files ssh reads: -F's, else the user's and the system's.
    let named = ssh
        .windows(2)
        .find(|w| w[0] == "-F")
        .map(|w| vec![PathBuf::from(&w[1])]);
    let files = named.unwrap_or_else(|| {
        let mut files = vec![PathBuf::from("/etc/ssh/ssh_config")];
        files.extend(std::env::var_os("HOME").map(|h| Path::new(&h).join(".ssh/config")));
        files
    });
    if files
        .iter()
        .any(|f| std::fs::read_to_string(f).is_ok_and(|text| chooses(&text)))
    {
        return false;
    }
    std::process::Command::new(program)
        .args(["-Q", "kex"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == MLKEM)
        })
}

impl Ssh {
    /// The control socket for `node` and the argv of the separate `ssh -N -f`
    /// that keeps its connection open, when connections are kept that way
    /// (see `needs_separate_master`).
    pub(super) fn master_argv(&self, node: &NodeName) -> Option<(PathBuf, Vec<String>)> {
        let reuse = self.reuse.as_ref().filter(|_| self.separate_master)?;
        let socket = reuse.socket(&self.base, node);
        let mut argv = self.base.clone();
        argv.extend(connection_reuse("yes", &socket, reuse.persist));
        argv.extend(["-N".into(), "-f".into(), "--".into(), node.to_string()]);
        Some((socket, argv))
    }
}

impl Reuse {
    /// The control socket for `node`: named by a hash of the ssh command
    /// line and node, because a socket path must stay under 108 bytes
    /// whatever the node name, and another SSH or user is another connection.
    fn socket(&self, base: &[String], node: &str) -> PathBuf {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for byte in base
            .iter()
            .flat_map(|w| w.bytes().chain([0]))
            .chain(node.bytes())
        {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.dir.join(format!("{hash:016x}"))
    }
}

/// Options of a master that keeps one ssh connection per node open for
/// `persist` after its last session, so the next tool of a pipeline, or the
/// next run, skips the key exchange. Keepalives let a master notice a node
/// that was re-imaged under it.
fn connection_reuse(master: &str, socket: &Path, persist: Duration) -> Vec<String> {
    [
        format!("ControlMaster={master}"),
        format!("ControlPath={}", socket.display()),
        format!("ControlPersist={}s", persist.as_secs()),
        "ServerAliveInterval=10".to_owned(),
        "ServerAliveCountMax=3".to_owned(),
    ]
    .into_iter()
    .flat_map(|option| ["-o".to_owned(), option])
    .collect()
}

/// Whether kept connections must be opened by an `ssh -N -f` of their own
/// rather than by a session: when a persisting master would keep the
/// stderr it started with, so a session's master would hold our pipe open
/// for SSH_CONTROL_PERSIST seconds after its session. It does with `-v`
/// (its debugging output), and before OpenSSH 8.0 a ProxyJump's ssh kept
/// it (7.3 and earlier: the master itself). An ssh offering ML-KEM is 9.9
/// or later: its version need not be asked.
fn needs_separate_master(ssh: &[String], mlkem: bool) -> bool {
    asks_for_debugging(ssh) || !(mlkem || ssh.first().is_some_and(|p| openssh_8_or_later(p)))
}

/// Whether `program -V` says OpenSSH 8.0 or later (anything else, or no
/// answer, is taken as older).
fn openssh_8_or_later(program: &str) -> bool {
    let Ok(out) = std::process::Command::new(program)
        .arg("-V")
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return false;
    };
    // `OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026`, on stderr.
    let said = String::from_utf8_lossy(&out.stderr);
    openssh_version(&said).is_some_and(|(major, _)| major >= 8)
}

/// The major and minor version in `ssh -V`'s words.
fn openssh_version(said: &str) -> Option<(u32, u32)> {
    let version = said.split("OpenSSH_").nth(1)?;
    let mut numbers = version.split(|c: char| !c.is_ascii_digit());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// Whether ssh's words ask for debugging output (`-v`, alone or in a
/// cluster such as `-vF FILE`), read as ssh reads its options.
fn asks_for_debugging(ssh: &[String]) -> bool {
    // ssh's options that take an argument (ssh(1)).
    const WITH_ARGUMENT: &str = "BbcDEeFIiJLlmOoPpQRSWw";
    let mut words = ssh.iter().skip(1);
    while let Some(word) = words.next() {
        if word == "--" {
            return false;
        }
        let Some(flags) = word.strip_prefix('-') else {
            continue;
        };
        for (at, flag) in flags.char_indices() {
            if flag == 'v' {
                return true;
            }
            if WITH_ARGUMENT.contains(flag) {
                if at + 1 == flags.len() {
                    words.next(); // its argument is the next word
                }
                break;
            }
        }
    }
    false
}

/// A directory only we can enter: whoever reaches a control socket gets a
/// session on the node as our ssh user. None (no reuse) if it cannot be made
/// private.
fn control_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = nix::unistd::getuid();
    // An empty or relative XDG_RUNTIME_DIR is to be ignored (the XDG
    // spec): sockets in ./baleine-ssh would follow the working directory.
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute());
    let dir = match runtime {
        Some(runtime) => runtime.join("baleine-ssh"),
        None => PathBuf::from(format!("/tmp/baleine-ssh-{uid}")),
    };
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let private =
        meta.is_dir() && meta.uid() == uid.as_raw() && meta.permissions().mode() & 0o077 == 0;
    if !private {
        log::warn!(
            "{} is not a private directory: ssh connections will not be reused",
            dir.display()
        );
    }
    private.then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeName {
        NodeName::new(name).unwrap()
    }

    /// An Ssh as `from_config` would make it, without touching the machine.
    fn ssh(reuse: bool) -> Ssh {
        Ssh {
            base: vec!["ssh".into(), "-o".into(), "BatchMode=yes".into()],
            reuse: reuse.then(|| Reuse {
                dir: PathBuf::from("/run/user/0/baleine-ssh"),
                persist: Duration::from_secs(60),
            }),
            separate_master: false,
        }
    }

    #[test]
    fn here_the_command_runs_in_a_local_shell() {
        assert_eq!(
            Ssh::here().argv(&node("gateway"), "echo hi"),
            ["sh", "-c", "echo hi"]
        );
        assert!(Ssh::here().master_argv(&node("gateway")).is_none());
    }

    #[test]
    fn the_node_comes_after_dashes_and_the_script_is_one_word() {
        for reuse in [false, true] {
            // Only a validated NodeName reaches ssh, and a name that looks
            // like an option is none; even so, the node comes after `--`.
            assert!(NodeName::new("-oProxyCommand=x").is_err());
            let argv = ssh(reuse).argv(&node("fit01"), "echo 'a b'; exit 3");
            let dashes = argv.iter().position(|w| w == "--").unwrap();
            assert_eq!(&argv[dashes..], ["--", "fit01", "echo 'a b'; exit 3"]);
            assert!(argv[..dashes].contains(&"BatchMode=yes".to_owned()));
        }
    }

    #[test]
    fn a_session_s_own_connection_is_kept_unless_ssh_debugs() {
        let argv = ssh(true).argv(&node("fit01"), "true");
        assert!(argv.contains(&"ControlMaster=auto".to_owned()));
        assert!(argv.contains(&"ControlPersist=60s".to_owned()));
        assert!(ssh(true).master_argv(&node("fit01")).is_none());
        // With -v, a master would keep writing to our stderr: a separate
        // one; so with a client older than OpenSSH 8.0 (its ProxyJump's ssh).
        let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert!(needs_separate_master(
            &words(&["ssh", "-vF", "/etc/ssh/x"]),
            true
        ));
        assert!(needs_separate_master(&words(&["/nonexistent/ssh"]), false));
        assert!(!needs_separate_master(&words(&["/nonexistent/ssh"]), true));
        let separate = Ssh {
            separate_master: true,
            ..ssh(true)
        };
        let argv = separate.argv(&node("fit01"), "true");
        assert!(argv.contains(&"ControlMaster=no".to_owned()));
        let (socket, master) = separate.master_argv(&node("fit01")).unwrap();
        assert!(argv.contains(&format!("ControlPath={}", socket.display())));
        let dashes = master.iter().position(|w| w == "--").unwrap();
        assert_eq!(&master[dashes - 2..], ["-N", "-f", "--", "fit01"]);
        assert!(master.contains(&"ControlMaster=yes".to_owned()));
        assert!(master.contains(&"ControlPersist=60s".to_owned()));
        assert!(ssh(false).master_argv(&node("fit01")).is_none());
        // Reuse off: no multiplexing at all, whatever the user's
        // configuration says (ControlMaster auto would make one a master).
        let plain = ssh(false).argv(&node("fit01"), "true");
        let options: Vec<&str> = plain.iter().map(String::as_str).collect();
        assert!(options
            .windows(4)
            .any(|w| w == ["-o", "ControlMaster=no", "-o", "ControlPath=none"]));
    }

    #[test]
    fn openssh_s_version_is_read_from_its_words() {
        let said = "OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026";
        assert_eq!(openssh_version(said), Some((9, 2)));
        assert_eq!(
            openssh_version("OpenSSH_7.4p1, OpenSSL 1.0.2k-fips"),
            Some((7, 4))
        );
        assert_eq!(openssh_version("OpenSSH_for_Windows_8.1p1"), None);
        assert_eq!(openssh_version("Dropbear v2022.83"), None);
        assert!(!openssh_8_or_later("/nonexistent/ssh"));
    }

    #[test]
    fn debugging_is_told_from_options_and_their_arguments() {
        let asks = |words: &[&str]| {
            asks_for_debugging(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
        };
        assert!(asks(&["ssh", "-v"]));
        assert!(asks(&["ssh", "-F", "cfg", "-qvv"]));
        assert!(asks(&["ssh", "-4v"]));
        // A `v` in an option's argument is no -v.
        assert!(!asks(&["ssh", "-F", "-v"]));
        assert!(!asks(&["ssh", "-ovisualhostkey=yes"]));
        assert!(!asks(&["ssh", "-l", "vagrant", "-i", "/home/v/key"]));
        assert!(!asks(&["-v"])); // the program itself
        assert!(!asks(&["ssh", "--", "-v"]));
    }

    #[test]
    fn each_node_and_ssh_command_line_has_its_own_short_socket() {
        let reuse = ssh(true).reuse.unwrap();
        let base = ssh(true).base;
        let a = reuse.socket(&base, "fit01");
        assert_ne!(a, reuse.socket(&base, "fit02"));
        let other: Vec<String> = ["ssh", "-F", "/etc/baleine/ssh_config"]
            .map(String::from)
            .to_vec();
        assert_ne!(a, reuse.socket(&other, "fit01"));
        // Words are kept apart: ["ab", "c"] is not ["a", "bc"].
        assert_ne!(
            reuse.socket(&["ab".into(), "c".into()], "n"),
            reuse.socket(&["a".into(), "bc".into()], "n")
        );
        let long = "n".repeat(300);
        assert!(reuse.socket(&base, &long).as_os_str().len() < 108);
    }
}
