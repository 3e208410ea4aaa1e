//! baleine-deploy and baleine-destroy on the testbed: real ssh, real docker, real registries.

mod common;

use common::harness::Test;
use common::{record_of, records, stderr, tool, Testbed};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn deploy(tb: &Testbed, args: &[&str]) -> Command {
    let mut command = tool(tb, "baleine-deploy");
    command.args(args);
    command
}

fn state_of(tb: &Testbed, node: &str) -> String {
    let out = tb.ssh(
        node,
        "docker inspect --format '{{.State.Status}} {{.Config.Image}}' container",
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn rhubarbe_node_list_deploys_the_same_digest_everywhere() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let nodes = tb.rhubarbe(&["nodes", &format!("1-{}", tb.nodes.len())]);
    let records = Test::new("baleine-deploy")
        .testbed(&tb)
        .args(&["-i", "busybox", "--", "sleep", "100000"])
        .stdin(&String::from_utf8_lossy(&nodes.stdout))
        .status(0)
        .nodes(tb.nodes.len())
        .run();
    let digest = &records[0]["digest"];
    assert!(
        digest.as_str().is_some_and(|d| d.starts_with("sha256:")),
        "{records:#?}"
    );
    for node in &tb.nodes {
        let record = record_of(&records, node);
        assert_eq!(record["ok"], true, "{record}");
        assert_eq!(&record["digest"], digest, "{node} runs other bits");
        assert_eq!(record["action"], "deploy");
        let state = state_of(&tb, node);
        assert!(state.starts_with("running "), "{node}: {state}");
        let id = tb.ssh_ok(node, "docker inspect --format '{{.Id}}' container");
        assert_eq!(record["container"], id.trim());
    }
    // The first node resolved the digest; the others ran exactly it.
    let pinned = records.iter().filter(|r| r["pinned"] == true).count();
    assert_eq!(pinned, tb.nodes.len() - 1);
    for record in records.iter().filter(|r| r["pinned"] == true) {
        let node = record["node"].as_str().unwrap();
        assert!(state_of(&tb, node).ends_with(&format!("busybox@{}", digest.as_str().unwrap())));
    }
}

#[test]
fn deploy_records_piped_into_destroy_remove_only_the_managed_container() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = &tb.nodes[0];
    tb.ssh_ok(
        node,
        "docker rm -f decoy >/dev/null 2>&1; docker run -d --name decoy busybox sleep 100000",
    );
    let pipeline = format!(
        "{deploy} -i busybox 1-{n} -- sleep 100000 | jq -c 'select(.ok)' | {destroy} -y",
        deploy = env!("CARGO_BIN_EXE_baleine-deploy"),
        destroy = env!("CARGO_BIN_EXE_baleine-destroy"),
        n = tb.nodes.len(),
    );
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", &pipeline])
        .env("BALEINE_CONFIG", tb.baleine_conf())
        .env_remove("NODES")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = records(&out);
    assert_eq!(records.len(), tb.nodes.len());
    for node in &tb.nodes {
        let record = record_of(&records, node);
        assert_eq!(
            (record["action"].as_str(), record["ok"].as_bool()),
            (Some("destroy"), Some(true))
        );
        assert_eq!(record["removed"], true);
        assert_eq!(state_of(&tb, node), "", "{node} still has its container");
    }
    let left = tb.ssh_ok(
        node,
        "docker ps --format '{{.Names}}'; docker image inspect --format ok busybox",
    );
    assert_eq!(
        left.split_whitespace().collect::<Vec<_>>(),
        ["decoy", "ok"],
        "decoy or image touched"
    );
    tb.ssh_ok(node, "docker rm -f decoy");
}

#[test]
fn destroying_where_nothing_runs_is_ok_and_says_so() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = &tb.nodes[1];
    tb.ssh_ok(node, "docker rm -f container >/dev/null 2>&1; true");
    let records = Test::new("baleine-destroy")
        .testbed(&tb)
        .args(&["-y", node])
        .status(0)
        .nodes(1)
        .run();
    assert_eq!(
        (records[0]["ok"].as_bool(), records[0]["removed"].as_bool()),
        (Some(true), Some(false))
    );
}

#[test]
fn destroy_without_yes_and_without_a_terminal_refuses_with_exit_2() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    // setsid: no controlling terminal, as in a cron job or CI.
    let out = Command::new("setsid")
        .args(["-w", env!("CARGO_BIN_EXE_baleine-destroy"), &tb.nodes[0]])
        .env("BALEINE_CONFIG", tb.baleine_conf())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pass -y"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn hostile_options_and_command_arrive_as_typed() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = &tb.nodes[0];
    let canary = "/tmp/baleine-pwned";
    tb.ssh_ok(node, &format!("rm -f {canary}"));
    Test::new("baleine-deploy")
        .testbed(&tb)
        .args(&[
            "-i",
            "busybox",
            "--options",
            &format!("-e 'MSG=hello world; touch {canary}' --label \"note=$(touch {canary})\""),
            node,
            "--",
            "sh",
            "-c",
            // Docker's log only shows whole lines: end with a newline.
            "printf '[%s]' \"$MSG\" \"$0\" \"$1\"; echo; sleep 100000",
            "a  b",
            &format!("`touch {canary}`"),
        ])
        .status(0)
        .nodes(1)
        .run();
    // The container writes its line once it runs: wait for it to show.
    let mut logs = String::new();
    common::wait_until("the container's line in its log", 30, || {
        logs = tb.ssh_ok(node, "docker logs container");
        logs.ends_with('\n')
    });
    assert_eq!(
        logs,
        format!("[hello world; touch {canary}][a  b][`touch {canary}`]\n")
    );
    let label = tb.ssh_ok(
        node,
        "docker inspect --format '{{index .Config.Labels \"note\"}}' container",
    );
    assert_eq!(label.trim(), format!("$(touch {canary})"));
    assert!(
        !tb.ssh(node, &format!("test -e {canary}")).status.success(),
        "a word was run by a shell"
    );
}

#[test]
fn a_dead_node_a_dead_engine_and_bad_input_fail_alone() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (no_sshd, no_docker) = (&tb.nodes[1], &tb.nodes[2]);
    let _sshd = tb.stop(&format!("{no_sshd}/sshd"));
    let _docker = tb.stop(&format!("{no_docker}/docker"));
    let canary = "/tmp/baleine-proxycommand";
    let _ = std::fs::remove_file(canary);
    let input = format!(
        "{}\n-oProxyCommand=touch${{IFS}}{canary}\n{{\"node\": 3}}\n{{oops\n{}\n",
        tb.nodes.join(" "),
        tb.nodes[0]
    );
    let records = Test::new("baleine-deploy")
        .testbed(&tb)
        .args(&["-i", "busybox", "--", "sleep", "100000"])
        .stdin(&input)
        .status(1)
        .run();
    let connect = record_of(&records, no_sshd);
    assert_eq!(
        (connect["ok"].as_bool(), connect["stage"].as_str()),
        (Some(false), Some("connect"))
    );
    assert!(
        connect["error"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{connect}"
    );
    let engine = record_of(&records, no_docker);
    // The first step on a node is getting the image: that is where a dead
    // engine shows (before anything is removed).
    assert_eq!(engine["stage"], "pull");
    assert!(
        engine["error"]
            .as_str()
            .unwrap()
            .contains("Cannot connect to the Docker daemon"),
        "{engine}"
    );
    for node in [&tb.nodes[0], &tb.nodes[3]] {
        assert_eq!(record_of(&records, node)["ok"], true);
    }
    let injected = record_of(&records, &format!("-oProxyCommand=touch${{IFS}}{canary}"));
    assert_eq!(
        (injected["stage"].as_str(), injected["line"].as_u64()),
        (Some("input"), Some(2))
    );
    assert!(
        !std::path::Path::new(canary).exists(),
        "a node name became an ssh option"
    );
    let bad_lines: Vec<u64> = records
        .iter()
        .filter(|r| r["node"].is_null())
        .map(|r| {
            assert_eq!(r["stage"], "input");
            r["line"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(bad_lines.len(), 2, "{records:#?}");
    assert!(bad_lines.contains(&3) && bad_lines.contains(&4));
    assert_eq!(
        records.len(),
        tb.nodes.len() + 3,
        "one record per node and per bad input"
    );
}

#[test]
fn a_missing_image_fails_at_pull_with_the_registry_error() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let records = Test::new("baleine-deploy")
        .testbed(&tb)
        .args(&[
            "-i",
            "faraday.repo/no-such-image:v1",
            &tb.nodes[0],
            &tb.nodes[1],
        ])
        .status(1)
        .nodes(2)
        .run();
    for record in records {
        assert_eq!(
            (record["ok"].as_bool(), record["stage"].as_str()),
            (Some(false), Some("pull")),
            "{record}"
        );
        assert!(
            record["error"].as_str().unwrap().contains("not found"),
            "{record}"
        );
    }
}

#[test]
fn a_hung_node_times_out_while_the_others_deploy() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let hung = &tb.nodes[3];
    let frozen = tb.freeze_docker(hung);
    let records = Test::new("baleine-deploy")
        .testbed(&tb)
        .args(&[
            "-i",
            "busybox",
            "--timeout",
            "3",
            &tb.nodes[0],
            hung,
            "--",
            "sleep",
            "100000",
        ])
        .status(1)
        .nodes(2)
        .run();
    drop(frozen);
    assert_eq!(record_of(&records, &tb.nodes[0])["ok"], true);
    let timeout = record_of(&records, hung);
    assert_eq!(timeout["stage"], "timeout", "{timeout}");
    assert!(
        timeout["error"].as_str().unwrap().contains("after 3 s"),
        "{timeout}"
    );
}

#[test]
fn head_1_ends_the_run_quietly() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let pipeline = format!(
        "{} -i busybox 1-{} -- sleep 100000 | head -1",
        env!("CARGO_BIN_EXE_baleine-deploy"),
        tb.nodes.len()
    );
    let out = Command::new("bash")
        .args([
            "-c",
            &format!("{pipeline}; echo \"status=${{PIPESTATUS[0]}}\" >&2"),
        ])
        .env("BALEINE_CONFIG", tb.baleine_conf())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert_eq!(
        stderr(&out).trim(),
        "status=0",
        "not quiet: {}",
        stderr(&out)
    );
    // The reader going away stops new work, never work half done: every
    // node still runs a container (the old one or the new one).
    for node in &tb.nodes {
        common::wait_until(
            &format!("{node} settled with a running container"),
            60,
            || {
                tb.ssh_ok(
                    node,
                    "docker inspect --format '{{.State.Status}}' container 2>/dev/null || true",
                )
                .trim()
                    == "running"
            },
        );
    }
}

#[test]
fn sigint_mid_deploy_gives_every_node_a_record_and_exit_130() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    for node in &tb.nodes {
        tb.ssh_ok(
            node,
            // Every bigbox image, the ones known by digest only included
            // (a pinned node has no `bigbox` tag): the deploy must pull.
            "docker rm -f container >/dev/null 2>&1; docker rmi -f $(docker images -q bigbox) >/dev/null 2>&1; true",
        );
    }
    // Mid-deploy: the first node's pull waits on a mirror that does not
    // answer, so it is still pulling when Ctrl-C comes.
    let _mirror = tb.freeze("mirror");
    let child = deploy(
        &tb,
        &[
            "-i",
            "bigbox",
            &format!("1-{}", tb.nodes.len()),
            "--",
            "sleep",
            "100000",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    common::wait_until("the first node pulling bigbox", 60, || {
        !common::processes("docker pull bigbox$").is_empty()
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let records = records(&out);
    assert_eq!(records.len(), tb.nodes.len());
    for node in &tb.nodes {
        let record = record_of(&records, node);
        assert!(
            record["ok"] == true || record["stage"] == "interrupted",
            "{record}"
        );
    }
    assert!(records.iter().any(|r| r["stage"] == "interrupted"));
    // The nodes that waited for the first one's digest never started: their
    // records say the old container runs on.
    for record in records.iter().filter(|r| r["ok"] != true) {
        let error = record["error"].as_str().unwrap();
        if error.starts_with("interrupted before starting") {
            assert!(error.ends_with("was left as it was"), "{record}");
        }
    }
    // What the deploy started stops with it: no docker pull client is left
    // waiting on the frozen mirror.
    common::wait_until("no docker pull left on the nodes", 30, || {
        common::processes("docker pull bigbox$").is_empty()
    });
}

#[test]
fn stdin_is_streamed_work_starts_before_eof() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let mut child = deploy(&tb, &["-i", "busybox", "--", "sleep", "100000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", tb.nodes[0]).unwrap();
    stdin.flush().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let record: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        (record["node"].as_str(), record["ok"].as_bool()),
        (Some(tb.nodes[0].as_str()), Some(true))
    );
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn redeploy_replaces_the_running_container() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = &tb.nodes[2];
    let first = records(
        &deploy(&tb, &["-i", "busybox", node, "--", "sleep", "100000"])
            .output()
            .unwrap(),
    );
    let second = records(
        &deploy(&tb, &["-i", "busybox", node, "--", "sleep", "200000"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        (first[0]["ok"].as_bool(), second[0]["ok"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(second[0]["replaced"], true);
    assert_ne!(first[0]["container"], second[0]["container"]);
    let cmd = tb.ssh_ok(
        node,
        "docker inspect --format '{{json .Config.Cmd}}' container",
    );
    assert_eq!(cmd.trim(), r#"["sleep","200000"]"#);
}

#[test]
fn dry_run_prints_quoted_commands_and_changes_nothing() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let out = deploy(
        &tb,
        &[
            "-i",
            "busybox",
            "--dry-run",
            "--options",
            "-e 'A=b c'",
            &tb.nodes[0],
            "--",
            "echo",
            "it's",
        ],
    )
    .env("BALEINE_CONTAINER_NAME", "dry-run-probe")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record = &records(&out)[0];
    assert_eq!(record["dry_run"], true);
    let script = record["script"].as_str().unwrap();
    assert!(script.contains("--name dry-run-probe"), "{script}");
    assert!(script.contains(r"-e 'A=b c' --label"), "{script}");
    assert!(script.contains(r" busybox echo 'it'\''s')"), "{script}");
    let ssh: Vec<&str> = record["ssh"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(
        &ssh[ssh.len() - 3..ssh.len() - 1],
        ["--", tb.nodes[0].as_str()]
    );
    assert!(!tb
        .ssh(&tb.nodes[0], "docker inspect dry-run-probe")
        .status
        .success());
}

#[test]
fn usage_errors_exit_2_before_any_work() {
    let tb = Testbed::get();
    let cases: [&[&str]; 5] = [
        &["-i", "busybox", "5-3"],
        &["-i", "Not/An:Image:", "1"],
        &["-i", "busybox", "--pull", "sometimes", "1"],
        &["-i", "busybox", "--options", "-e 'unterminated", "1"],
        &["-oProxyCommand=x", "1"],
    ];
    for args in cases {
        let out = deploy(&tb, args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert!(!stderr(&out).is_empty());
    }
    let version = deploy(&tb, &["--version"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("baleine-deploy {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_bad_configuration_line_is_reported_with_file_and_line() {
    let tb = Testbed::get();
    let conf = std::env::temp_dir().join(common::unique("baleine-bad.conf"));
    std::fs::write(&conf, "SSH = \"ssh\"\nPARALLEL = \"unterminated\n").unwrap();
    let out = deploy(&tb, &["-i", "busybox", "1"])
        .env("BALEINE_CONFIG", &conf)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&conf);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:2", conf.display())),
        "{}",
        stderr(&out)
    );
}

/// `--bootstrap` re-images nodes with rhubarbe, which needs R2Lab's hardware:
/// here, and only here, a stand-in rhubarbe plays `load` and `wait` (the
/// deploy after it is real).
#[test]
fn bootstrap_deploys_on_the_nodes_that_came_back_and_reports_the_others() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (back, lost) = (tb.nodes[0].as_str(), tb.nodes[1].as_str());
    let dir = std::env::temp_dir().join(common::unique("rhubarbe-stand-in"));
    std::fs::create_dir_all(&dir).unwrap();
    let stand_in = dir.join("rhubarbe");
    let log = dir.join("calls");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\necho \"$*\" >> {log}\ncase $1 in\n  load) exit 0 ;;\n  wait) shift; for n in \"$@\"; do \
             if [ \"$n\" = {lost} ]; then echo \"<Node $n>:ssh KO\"; else echo \"<Node $n>:ssh OK\"; fi; done; \
             [ \"$*\" = \"${{*#{lost}}}\" ] ;;\nesac\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&stand_in)
        .status()
        .unwrap();
    let out = deploy(
        &tb,
        &[
            "-i",
            "busybox",
            "--bootstrap",
            "default",
            back,
            lost,
            "--",
            "sleep",
            "100000",
        ],
    )
    .env("BALEINE_RHUBARBE", &stand_in)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let records = records(&out);
    assert_eq!(record_of(&records, back)["ok"], true);
    let failed = record_of(&records, lost);
    assert_eq!(failed["stage"], "bootstrap", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("did not come back"),
        "{failed}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        format!("load -i baleine {back} {lost}\nwait {back} {lost}\n")
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// On a terminal, progress and a summary go to stderr, and stdout (a file
/// here) holds nothing but the records.
#[test]
fn a_terminal_gets_a_summary_on_stderr_and_stdout_stays_pure_json() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let out_file = std::env::temp_dir().join(format!("{}.jsonl", common::unique("progress")));
    let command = format!(
        "BALEINE_CONFIG={} {} -i busybox {} {} -- sleep 100000 > {}; echo done-$?",
        tb.baleine_conf().display(),
        env!("CARGO_BIN_EXE_baleine-deploy"),
        tb.nodes[0],
        tb.nodes[1],
        out_file.display()
    );
    let terminal = common::Terminal::start(&tb, "bash --norc --noprofile");
    terminal.type_line(&command);
    // "done-" also shows in the echoed command line: wait for its own line.
    let screen = terminal.wait_for("\ndone-", 60);
    assert!(
        screen.contains("deploy: 2 nodes, 2 ok"),
        "no summary on the terminal:\n{screen}"
    );
    assert!(screen.lines().any(|l| l == "done-0"), "{screen}");
    let written = std::fs::read_to_string(&out_file).unwrap();
    let _ = std::fs::remove_file(&out_file);
    assert_eq!(written.lines().count(), 2);
    for line in written.lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not pure JSON ({e}): {line:?}"));
    }
}

/// What the progress line says while a deploy runs: how many are done,
/// which stage the nodes at work have reached, how many wait, and for what.
#[test]
fn the_progress_line_says_where_the_nodes_are_and_what_they_wait_for() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (a, b) = (&tb.nodes[0], &tb.nodes[1]);
    for node in [a, b] {
        tb.ssh_ok(
            node,
            "docker rm -f container >/dev/null 2>&1; docker rmi -f $(docker images -q bigbox) >/dev/null 2>&1; true",
        );
    }
    let out_file = std::env::temp_dir().join(format!("{}.jsonl", common::unique("progress")));
    // The first node's pull waits on a mirror that does not answer.
    let mirror = tb.freeze("mirror");
    let terminal = common::Terminal::start(&tb, "bash --norc --noprofile");
    terminal.type_line(&format!(
        "BALEINE_CONFIG={} {} -i bigbox {a} {b} -- sleep 100000 > {}; echo done-$?",
        tb.baleine_conf().display(),
        env!("CARGO_BIN_EXE_baleine-deploy"),
        out_file.display()
    ));
    let screen = terminal.wait_for("1 waiting", 60);
    drop(mirror);
    // (The pty may show it after the echoed command, on the same row.)
    let line = screen
        .lines()
        .find(|l| l.contains("1 waiting"))
        .and_then(|l| l.find("deploy: ").map(|at| l[at..].to_owned()))
        .unwrap_or_default();
    assert!(
        line.starts_with("deploy: 0/2 done, 0 failed · pull 1"),
        "{line:?}"
    );
    assert!(line.contains(&format!("{a} pulls")), "{line:?}");
    let screen = terminal.wait_for("\ndone-", 120);
    let _ = std::fs::remove_file(&out_file);
    assert!(screen.lines().any(|l| l == "done-0"), "{screen}");
}

#[test]
fn a_typo_in_the_image_never_breaks_the_running_experiment() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[0].as_str();
    let out = deploy(&tb, &["-i", "busybox", node, "--", "sleep", "3600"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let running = tb.ssh_ok(
        node,
        "docker inspect --format '{{.Id}} {{.State.Status}}' container",
    );
    let out = deploy(&tb, &["-i", "busybx", node, "--", "sleep", "3600"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let record = &records(&out)[0];
    assert_eq!(record["stage"], "pull", "{record}");
    let error = record["error"].as_str().unwrap();
    // Not found on the mirror (on R2Lab, not found on Docker Hub either; here
    // the Hub is out of reach, and the error says that instead).
    assert!(
        error.contains("not found") || error.contains("no such image on the nodes' mirror"),
        "{error}"
    );
    assert!(error.contains("mirror faraday.repo:81"), "{error}");
    assert!(error.contains("left as it was"), "{error}");
    assert_eq!(
        tb.ssh_ok(
            node,
            "docker inspect --format '{{.Id}} {{.State.Status}}' container"
        ),
        running,
        "the running container was touched"
    );
    // A saved image's name without the repo's host: the error suggests it.
    let name = common::unique("typo");
    let out = tool(&tb, "baleine-save")
        .args(["-n", &format!("{name}:v1"), node])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = deploy(
        &tb,
        &["-i", &format!("{name}:v1"), node, "--", "sleep", "3600"],
    )
    .output()
    .unwrap();
    let error = records(&out)[0]["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains(&format!("did you mean faraday.repo/{name}:v1?")),
        "{error}"
    );
}

#[test]
fn a_container_that_exits_at_once_is_a_failed_deploy() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[0].as_str();
    let records = Test::new("baleine-deploy")
        .testbed(&tb)
        .args(&[
            "-i",
            "busybox",
            node,
            "--",
            "sh",
            "-c",
            "echo cannot start; exit 3",
        ])
        .status(1)
        .nodes(1)
        .run();
    let record = &records[0];
    assert_eq!(record["stage"], "run", "{record}");
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("exited at once with status 3"), "{error}");
    assert!(error.contains("cannot start"), "{error}");
}

#[test]
fn wait_gives_a_record_once_the_container_is_ready_or_says_why_not() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[0].as_str();
    let run = |args: &[&str]| -> Value {
        let mut all = vec!["-i", "busybox", node];
        all.extend(args);
        let out = deploy(&tb, &all).output().unwrap();
        records(&out).remove(0)
    };
    // Ready when the user's check succeeds in the container.
    let record = run(&[
        "--wait",
        "30",
        "--ready-cmd",
        "test -f /tmp/up",
        "--",
        "sh",
        "-c",
        "sleep 1; touch /tmp/up; sleep 3600",
    ]);
    assert_eq!(record["ok"], true, "{record}");
    assert_eq!(record["ready"], true);
    assert!(record["ready_ms"].as_u64().unwrap() >= 500, "{record}");
    // No check, no HEALTHCHECK: still running after the settle time.
    let record = run(&["--wait", "30", "--", "sleep", "3600"]);
    assert_eq!(
        (record["ok"].as_bool(), record["ready_ms"].as_u64()),
        (Some(true), Some(2000)),
        "{record}"
    );
    // A container that dies while starting up fails the node, with why.
    let record = run(&[
        "--wait",
        "30",
        "--",
        "sh",
        "-c",
        "sleep 1; echo giving up; exit 4",
    ]);
    assert_eq!(record["stage"], "ready", "{record}");
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("exited with status 4"), "{error}");
    assert!(error.contains("giving up"), "{error}");
    // Never ready in time.
    let record = run(&["--wait", "2", "--ready-cmd", "false", "--", "sleep", "3600"]);
    assert_eq!(record["stage"], "ready", "{record}");
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("not ready after 2 s"),
        "{record}"
    );
}

/// The other nodes start as soon as the first one has the image and its
/// digest, not when it is done: here every node is in its readiness wait
/// at once, which the first node, still waiting to be ready, would forbid
/// if the others waited for its record.
#[test]
fn the_other_nodes_start_once_the_first_has_the_digest() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let nodes = &tb.nodes[..2];
    // Ready once /var/go exists (R2Lab's /var is the node's container_fs).
    let go = |node: &str| {
        tb.dir
            .join("n")
            .join(node)
            .join("container-home/container_fs/go")
    };
    for node in nodes {
        let _ = std::fs::remove_file(go(node));
    }
    let child = deploy(
        &tb,
        &[
            "-i",
            "busybox",
            "1-2",
            "--wait",
            "120",
            "--ready-cmd",
            "test -e /var/go || sleep 6.25",
            "--",
            "sleep",
            "100000",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    common::wait_until("both nodes waiting to be ready at once", 60, || {
        common::processes("^sleep 6.25$").len() >= 2
    });
    for node in nodes {
        std::fs::write(go(node), "").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let records = records(&out);
    assert_eq!(records.len(), 2);
    assert!(records.iter().any(|r| r["pinned"] == true), "{records:?}");
}
