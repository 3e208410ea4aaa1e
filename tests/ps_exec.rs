//! baleine-ps and baleine-exec on the testbed: a real fleet of containers, seen and driven.

mod common;

use common::{
    processes, record_of, records, run_with_stdin, signal, stderr, tool, unique, wait_until,
    Testbed,
};
use nix::sys::signal::Signal;
use std::process::{Command, Output, Stdio};

fn run(tb: &Testbed, name: &str, args: &[&str]) -> Output {
    tool(tb, name).args(args).output().expect("tool runs")
}

fn deploy(tb: &Testbed, image: &str, nodes: &[&str]) {
    let mut args = vec!["-i", image];
    args.extend(nodes);
    args.extend(["--", "sleep", "100000"]);
    let out = run(tb, "baleine-deploy", &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn ps_shows_a_mixed_fleet_and_every_state() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| tb.nodes[i].as_str());
    deploy(&tb, "busybox", &[a, b]);
    deploy(&tb, "bigbox", &[c]);
    tb.ssh_ok(b, "docker stop -t 0 container >/dev/null");
    tb.ssh_ok(d, "docker rm -f container >/dev/null 2>&1; true");
    let before = tb.ssh_ok(a, "docker ps -a --format '{{.ID}} {{.Status}}' | sort");

    let out = run(&tb, "baleine-ps", &[a, b, c, d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = records(&out);
    let (ra, rb, rc, rd) = (
        record_of(&records, a),
        record_of(&records, b),
        record_of(&records, c),
        record_of(&records, d),
    );
    assert_eq!(ra["state"], "running");
    assert!(ra["uptime_s"].as_u64().is_some() && ra["started_at"].as_str().is_some());
    assert!(ra["engine"].as_str().unwrap().starts_with("20."), "{ra}");
    assert_eq!(
        (rb["state"].as_str(), rb["exit_code"].as_i64()),
        (Some("exited"), Some(137))
    );
    assert_eq!(rd["state"], "absent");
    assert_eq!(ra["digest"], rb["digest"], "same image, same digest");
    assert_ne!(ra["digest"], rc["digest"], "a mixed fleet must show");
    assert_eq!(rc["image"], "bigbox");
    let id = tb.ssh_ok(a, "docker inspect --format '{{.Id}}' container");
    assert_eq!(ra["container"], id.trim());
    // ps is read-only.
    assert_eq!(
        tb.ssh_ok(a, "docker ps -a --format '{{.ID}} {{.Status}}' | sort")
            .lines()
            .count(),
        before.lines().count()
    );
}

#[test]
fn ps_lists_other_containers_on_request() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[0].as_str();
    deploy(&tb, "busybox", &[node]);
    tb.ssh_ok(node, "docker rm -f sidecar >/dev/null 2>&1; docker run -d --name sidecar busybox sleep 100000 >/dev/null");
    let plain = &records(&run(&tb, "baleine-ps", &[node]))[0];
    assert!(plain.get("other_containers").is_none());
    let all = &records(&run(&tb, "baleine-ps", &["--all-containers", node]))[0];
    let names: Vec<&str> = all["other_containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sidecar"], "{all}");
    tb.ssh_ok(node, "docker rm -f sidecar >/dev/null");
}

#[test]
fn exec_reports_exit_codes_and_both_streams_per_node() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (a, b) = (tb.nodes[0].as_str(), tb.nodes[1].as_str());
    deploy(&tb, "busybox", &[a, b]);
    let script =
        "echo \"out $(hostname) $1\"; echo 'err  x' >&2; [ $(hostname) = fit01 ] || exit 3";
    let out = run(
        &tb,
        "baleine-exec",
        &[a, b, "--", "sh", "-c", script, "sh", "two words"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let records = records(&out);
    let ok = record_of(&records, "fit01");
    assert_eq!(
        (ok["ok"].as_bool(), ok["exit_code"].as_i64()),
        (Some(true), Some(0))
    );
    assert_eq!(ok["stdout"], "out fit01 two words\n");
    assert_eq!(ok["stderr"], "err  x\n");
    let failed = record_of(&records, b);
    assert_eq!(
        (
            failed["ok"].as_bool(),
            failed["stage"].as_str(),
            failed["exit_code"].as_i64()
        ),
        (Some(false), Some("exec"), Some(3))
    );
    assert_eq!(failed["stdout"], format!("out {b} two words\n"));
}

#[test]
fn exec_caps_large_output_or_writes_it_all_to_files() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[0].as_str();
    deploy(&tb, "busybox", &[node]);
    let out = run(
        &tb,
        "baleine-exec",
        &["--max-output", "1000", node, "--", "seq", "1", "100000"],
    );
    let record = &records(&out)[0];
    assert_eq!(record["truncated"], true);
    assert_eq!(record["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(
        record["stdout_bytes"], 588_895,
        "the full size is still counted"
    );

    let dir = std::env::temp_dir().join(unique("exec-output"));
    let out = run(
        &tb,
        "baleine-exec",
        &[
            "--output-dir",
            dir.to_str().unwrap(),
            node,
            "--",
            "sh",
            "-c",
            "seq 1 100000; echo done >&2",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record = &records(&out)[0];
    assert!(record.get("stdout").is_none());
    let written = std::fs::read_to_string(dir.join(format!("{node}.out"))).unwrap();
    assert_eq!(written.len(), 588_895);
    assert!(written.ends_with("99999\n100000\n"));
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("{node}.err"))).unwrap(),
        "done\n"
    );
    assert_eq!(
        record["stdout_file"],
        dir.join(format!("{node}.out")).display().to_string()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exec_feeds_the_same_stdin_to_every_node() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (a, b) = (tb.nodes[0].as_str(), tb.nodes[1].as_str());
    deploy(&tb, "busybox", &[a, b]);
    let input = std::env::temp_dir().join(unique("exec-stdin"));
    std::fs::write(&input, "line one\nline two\n").unwrap();
    let out = run(
        &tb,
        "baleine-exec",
        &[
            "--stdin",
            input.to_str().unwrap(),
            a,
            b,
            "--",
            "sh",
            "-c",
            "wc -l; ",
        ],
    );
    let _ = std::fs::remove_file(&input);
    for record in records(&out) {
        assert_eq!(
            record["stdout"].as_str().map(str::trim),
            Some("2"),
            "{record}"
        );
    }
}

#[test]
fn exec_timeout_kills_the_command_inside_the_container() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[0].as_str();
    deploy(&tb, "busybox", &[node]);
    let out = run(
        &tb,
        "baleine-exec",
        &[
            "--timeout",
            "2",
            node,
            "--",
            "sh",
            "-c",
            "echo started; sleep 77; echo never",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let record = &records(&out)[0];
    assert_eq!(record["stage"], "timeout", "{record}");
    assert_eq!(record["stdout"], "started\n");
    assert_eq!(
        record["stderr"], "",
        "the kill notice must not leak into the command's output"
    );
    wait_until("the command killed at its timeout", 30, || {
        !tb.ssh_ok(node, "docker top container -o pid,args")
            .contains("sleep 77")
    });
}

#[test]
fn ctrl_c_stops_the_commands_on_the_nodes_not_just_ssh() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (a, b) = (tb.nodes[0].as_str(), tb.nodes[1].as_str());
    deploy(&tb, "busybox", &[a, b]);
    let child = tool(&tb, "baleine-exec")
        .args([a, b, "--", "sleep", "3011"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tool runs");
    wait_until("both commands running", 60, || {
        processes("^sleep 3011$").len() == 2
    });
    signal(&child, Signal::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let records = records(&out);
    for node in [a, b] {
        assert_eq!(record_of(&records, node)["stage"], "interrupted");
    }
    wait_until("no sleep 3011 left in the containers", 30, || {
        processes("^sleep 3011$").is_empty()
    });
}

/// Ctrl-C typed at a terminal goes to the whole foreground group, not only
/// to the tool: the records must still say `interrupted` (not ssh's "exit
/// status 255"), the terminal says what is being done, and the commands
/// stop on the nodes.
#[test]
fn ctrl_c_typed_at_a_terminal_interrupts_every_node_and_says_so() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (a, b) = (tb.nodes[0].as_str(), tb.nodes[1].as_str());
    deploy(&tb, "busybox", &[a, b]);
    let out_file = std::env::temp_dir().join(format!("{}.jsonl", unique("ctrl-c")));
    let terminal = common::Terminal::start(&tb, "bash --norc --noprofile");
    terminal.type_line(&format!(
        "BALEINE_CONFIG={} {} {a} {b} -- sleep 3013 > {}; echo done-$?",
        tb.baleine_conf().display(),
        common::binary("baleine-exec"),
        out_file.display()
    ));
    wait_until("both commands running", 60, || {
        processes("^sleep 3013$").len() == 2
    });
    terminal.keys(&["C-c"]);
    let screen = terminal.wait_for("\ndone-", 60);
    let written = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    assert!(screen.lines().any(|l| l == "done-130"), "{screen}");
    assert!(
        screen.contains("interrupting: stopping 2 nodes"),
        "{screen}"
    );
    let records: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect();
    assert_eq!(records.len(), 2, "{written}");
    for node in [a, b] {
        let record = record_of(&records, node);
        assert_eq!(record["stage"], "interrupted", "{record}");
        assert!(
            !record["error"].as_str().unwrap().contains("255"),
            "{record}"
        );
    }
    wait_until("no sleep 3013 left in the containers", 30, || {
        processes("^sleep 3013$").is_empty()
    });
}

#[test]
fn the_time_limit_holds_when_the_tool_and_its_ssh_die() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let a = tb.nodes[0].as_str();
    deploy(&tb, "busybox", &[a]);
    let mut child = tool(&tb, "baleine-exec")
        .args(["--timeout", "4", a, "--", "sleep", "3012"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tool runs");
    wait_until("the command running", 60, || {
        processes("^sleep 3012$").len() == 1
    });
    // Everything on our side dies at once (kill -9 of the tool and of its
    // ssh): nobody here is left to stop the command.
    let ours = Command::new("pkill")
        .args(["-KILL", "-P", &child.id().to_string(), "-x", "ssh"])
        .status()
        .unwrap();
    assert!(ours.success(), "no ssh child of the tool to kill");
    child.kill().unwrap();
    child.wait().unwrap();
    // The node's own timer stops it, at 4 s.
    wait_until("the node's timer stopping sleep 3012", 60, || {
        processes("^sleep 3012$").is_empty()
    });
}

#[test]
fn exec_on_a_stopped_or_missing_container_says_so() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (a, b) = (tb.nodes[0].as_str(), tb.nodes[1].as_str());
    deploy(&tb, "busybox", &[a]);
    tb.ssh_ok(a, "docker stop -t 0 container >/dev/null");
    tb.ssh_ok(b, "docker rm -f container >/dev/null 2>&1; true");
    let mut exec = tool(&tb, "baleine-exec");
    exec.args(["--", "true"]);
    let out = run_with_stdin(exec, &format!("{a}\n{b}\n"));
    assert_eq!(out.status.code(), Some(1));
    let records = records(&out);
    let stopped = record_of(&records, a);
    assert_eq!(stopped["stage"], "exec");
    assert!(
        stopped["error"]
            .as_str()
            .unwrap()
            .contains("is exited, not running"),
        "{stopped}"
    );
    let missing = record_of(&records, b);
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("no container named container"),
        "{missing}"
    );
}

#[test]
fn exec_words_reach_the_container_as_typed_through_root_s_bash() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let a = tb.nodes[0].as_str();
    deploy(&tb, "busybox", &[a]);
    // Root's login shell on the node is bash, which would brace-expand,
    // tilde-expand and glob any of these if they reached it unquoted.
    let words = ["{a,b}", "x{1..3}", "~root", "*", "=ls", "$(id)", "a\nb"];
    let mut args = vec![a, "--", "printf", "[%s]"];
    args.extend(words);
    let out = run(&tb, "baleine-exec", &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = records(&out);
    let expected: String = words.iter().map(|w| format!("[{w}]")).collect();
    assert_eq!(record_of(&records, a)["stdout"], expected);
}

#[test]
fn exec_needs_a_command() {
    let tb = Testbed::get();
    let out = run(&tb, "baleine-exec", &[&tb.nodes[0]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no command"));
}

/// Runs a tool on a terminal of its own (util-linux `script`): what it showed.
fn on_a_terminal(tb: &Testbed, command: &str) -> String {
    let bin = std::path::Path::new(common::binary("baleine-ps"))
        .parent()
        .unwrap();
    let out = Command::new("script")
        .args([
            "-qefc",
            &format!("{}/{command}", bin.display()),
            "/dev/null",
        ])
        .env("BALEINE_CONFIG", tb.baleine_conf())
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn on_a_terminal_ps_is_a_table_and_exec_output_is_grouped() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (a, b, c) = (
        tb.nodes[0].as_str(),
        tb.nodes[1].as_str(),
        tb.nodes[2].as_str(),
    );
    deploy(&tb, "busybox", &[a, b, c]);
    let screen = on_a_terminal(&tb, &format!("baleine-ps {a} {b} {c}"));
    assert!(screen.contains("NODE   STATE    IMAGE"), "{screen}");
    assert!(
        screen.contains(&format!("{a}  running  busybox")),
        "{screen}"
    );
    assert!(
        !screen.contains("{\"node\""),
        "JSON on a person's terminal: {screen}"
    );
    // Which digest runs where, folded: a mixed fleet shows at a glance.
    assert!(screen.contains(": fit[01-03]\n"), "{screen}");
    assert!(screen.contains("ps: 3 on "), "{screen}");
    let screen = on_a_terminal(
        &tb,
        &format!("baleine-exec {a} {b} {c} -- sh -c 'echo same; [ $(hostname) != {b} ]'"),
    );
    assert!(screen.contains("fit[01,03] (exit 0)\nsame\n"), "{screen}");
    assert!(
        screen.contains(&format!("{b} (exit 1)\nsame\n")),
        "{screen}"
    );
}
