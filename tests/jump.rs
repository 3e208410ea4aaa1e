//! The two-level variant: gateway → jump host → nodes, through the user's ssh configuration (ProxyJump).

mod common;

use common::{records, stderr, tool, unique, Testbed};

/// Logins the jump host has accepted so far (each one is a new connection).
fn jump_logins(tb: &Testbed) -> usize {
    std::fs::read_to_string(tb.dir.join("jump_sshd.log"))
        .unwrap_or_default()
        .matches("Accepted publickey for root")
        .count()
}

/// The testbed's configuration, reaching the nodes through the jump host.
fn through_jump(tb: &Testbed, persist: u32) -> std::path::PathBuf {
    let path = std::env::temp_dir()
        .join(unique("jump"))
        .with_extension("conf");
    let text = std::fs::read_to_string(tb.baleine_conf()).unwrap()
        + &format!(
            "SSH = \"ssh -F {}\"\nSSH_CONTROL_PERSIST = {persist}\n",
            tb.dir.join("ssh_config_jump").display()
        );
    std::fs::write(&path, text).unwrap();
    path
}

fn ps_all(
    tb: &Testbed,
    conf: &std::path::Path,
    runtime: &std::path::Path,
) -> Vec<serde_json::Value> {
    let n = tb.nodes.len().to_string();
    let out = tool(tb, "baleine-ps")
        .env("BALEINE_CONFIG", conf)
        .env("XDG_RUNTIME_DIR", runtime)
        .args(["-a", "-j", &n])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = records(&out);
    assert_eq!(records.len(), tb.nodes.len(), "{records:?}");
    records
}

#[test]
fn new_and_kept_connections_through_a_jump_host() {
    let tb = Testbed::get();
    let runtime = std::env::temp_dir().join(unique("jump-runtime"));
    std::fs::create_dir_all(&runtime).unwrap();
    let nodes = tb.nodes.len();

    // New connections: each run logs in on the jump host once per node,
    // all at once (-j N), and every node answers.
    let conf = through_jump(&tb, 0);
    let before = jump_logins(&tb);
    ps_all(&tb, &conf, &runtime);
    common::wait_until("the jump host's log of every login", 10, || {
        jump_logins(&tb) >= before + nodes
    });
    assert_eq!(jump_logins(&tb), before + nodes);

    // Kept connections: the first run opens them through the jump host,
    // the next one opens none.
    let conf = through_jump(&tb, 60);
    let before = jump_logins(&tb);
    ps_all(&tb, &conf, &runtime);
    common::wait_until("the jump host's log of every login", 10, || {
        jump_logins(&tb) >= before + nodes
    });
    let opened = jump_logins(&tb);
    let again = ps_all(&tb, &conf, &runtime);
    assert!(again.iter().all(|r| r["ok"] == true), "{again:?}");
    assert_eq!(
        jump_logins(&tb),
        opened,
        "the second run opened connections"
    );
    // What we start, we stop: the kept connections end with their sockets.
    for socket in std::fs::read_dir(runtime.join("baleine-ssh"))
        .unwrap()
        .flatten()
    {
        let _ = std::process::Command::new("ssh")
            .args([
                "-o",
                &format!("ControlPath={}", socket.path().display()),
                "-O",
                "exit",
                "x",
            ])
            .output();
    }
}
