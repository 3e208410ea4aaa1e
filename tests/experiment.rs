//! The experiment loop on the testbed: baleine-logs, baleine-cp (a hostile node's tar included) and baleine-rmi.

mod common;

use common::{record_of, records, stderr, tool, unique, Testbed};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

fn run(tb: &Testbed, name: &str, args: &[&str]) -> Output {
    tool(tb, name).args(args).output().expect("tool runs")
}

fn ok(out: &Output) -> Vec<serde_json::Value> {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    records(out)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn logs_give_each_node_its_container_s_output() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    ok(&run(
        &tb,
        "baleine-deploy",
        &[
            "-i",
            "busybox",
            "1-2",
            "--wait",
            "60",
            "--",
            "sh",
            "-c",
            "echo out {node}; echo err {index} >&2; echo last; sleep 100000",
        ],
    ));
    let logs = ok(&run(&tb, "baleine-logs", &["1-2"]));
    assert_eq!(logs.len(), 2);
    for (node, index) in [("fit01", 1), ("fit02", 2)] {
        let record = record_of(&logs, node);
        assert_eq!(record["stdout"], format!("out {node}\nlast\n"), "{record}");
        assert_eq!(record["stderr"], format!("err {index}\n"), "{record}");
        assert_eq!(record["truncated"], false);
    }
    // The last line of the two streams together (docker orders them by time).
    let tail = ok(&run(&tb, "baleine-logs", &["1", "--tail", "1"]));
    let kept = format!(
        "{}{}",
        tail[0]["stdout"].as_str().unwrap(),
        tail[0]["stderr"].as_str().unwrap()
    );
    assert_eq!(kept.lines().count(), 1, "{}", tail[0]);

    let dir = scratch("logs");
    let files = ok(&run(
        &tb,
        "baleine-logs",
        &["1-2", "--output-dir", dir.to_str().unwrap()],
    ));
    assert_eq!(files.len(), 2);
    assert_eq!(
        std::fs::read_to_string(dir.join("fit02.stdout")).unwrap(),
        "out fit02\nlast\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("fit02.stderr")).unwrap(),
        "err 2\n"
    );

    // A node without the container: a record that says so, the others go on.
    ok(&run(&tb, "baleine-destroy", &["-y", "3"]));
    let out = run(&tb, "baleine-logs", &["2-3"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let missing = record_of(&records(&out), "fit03").clone();
    assert_eq!(missing["stage"], "logs", "{missing}");
    assert!(missing["error"].as_str().unwrap().contains("no container"));
}

/// The line records and node records a running `baleine-logs --follow` printed so far.
struct Follower {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    fn start(tb: &Testbed, nodes: &str) -> Follower {
        Follower::start_with(tb, nodes, &[])
    }

    fn start_with(tb: &Testbed, nodes: &str, more: &[&str]) -> Follower {
        let mut child = tool(tb, "baleine-logs")
            .args([nodes, "--follow", "--tail", "0"])
            .args(more)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.unwrap();
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        Follower {
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn seen(&self) -> Vec<serde_json::Value> {
        self.lines.lock().unwrap().clone()
    }

    fn wait(mut self) -> (Option<i32>, Vec<serde_json::Value>) {
        let status = self.child.wait().unwrap().code();
        self.reader.take().unwrap().join().unwrap();
        (status, self.seen())
    }
}

/// Runs busybox as the managed container on `nodes`.
fn deploy_busybox(tb: &Testbed, nodes: &str) {
    ok(&run(
        tb,
        "baleine-deploy",
        &["-i", "busybox", nodes, "--", "sleep", "100000"],
    ));
}

/// Runs `sh -c script` in the managed containers of `nodes`, which must all
/// succeed.
fn sh_on(tb: &Testbed, nodes: &str, script: &str) {
    ok(&run(tb, "baleine-exec", &[nodes, "--", "sh", "-c", script]));
}

/// Waits until no `docker logs --follow` client is left on the nodes.
fn no_docker_logs_left() {
    common::wait_until("no docker logs left on the node", 30, || {
        common::processes(FOLLOWING).is_empty()
    });
}

/// The `docker logs` a follow runs on a node, as the machine's processes show it.
const FOLLOWING: &str = "docker .*logs --tail 0 --follow container";

/// Waits until `count` `docker logs --follow` clients run on the nodes.
fn following(count: usize) {
    common::wait_until("docker logs --follow on the nodes", 30, || {
        common::processes(FOLLOWING).len() >= count
    });
}

#[test]
fn follow_streams_each_line_as_it_comes_until_the_containers_stop() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    deploy_busybox(&tb, "1-2");
    let follower = Follower::start(&tb, "1-2");
    following(2);
    // What the containers' main process prints is their log.
    sh_on(
        &tb,
        "1-2",
        "echo hello {node} > /proc/1/fd/1; echo oops > /proc/1/fd/2",
    );
    common::wait_until("four log lines", 30, || follower.seen().len() >= 4);
    let lines = follower.seen();
    assert!(
        lines.contains(
            &serde_json::json!({"node": "fit01", "stream": "stdout", "line": "hello fit01"})
        ),
        "{lines:?}"
    );
    assert!(
        lines.contains(&serde_json::json!({"node": "fit02", "stream": "stderr", "line": "oops"})),
        "{lines:?}"
    );
    // Once every container is gone, the follow ends by itself.
    ok(&run(&tb, "baleine-destroy", &["-y", "1-2"]));
    let (status, all) = follower.wait();
    assert_eq!(status, Some(0), "{all:?}");
    let ends: Vec<&serde_json::Value> = all.iter().filter(|r| r["action"] == "logs").collect();
    assert_eq!(ends.len(), 2, "{all:?}");
    for end in ends {
        assert_eq!(end["ok"], true, "{end}");
        assert_eq!(end["lines"], 2, "{end}");
    }
}

#[test]
fn ctrl_c_ends_a_follow_with_status_0_and_its_docker_logs_on_the_nodes() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    deploy_busybox(&tb, "3");
    let follower = Follower::start(&tb, "3");
    following(1);
    common::signal(&follower.child, nix::sys::signal::Signal::SIGINT);
    // Following until told to stop is --follow's job: Ctrl-C is its end,
    // not a failure.
    let (status, all) = follower.wait();
    assert_eq!(status, Some(0), "{all:?}");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["followed_until"], "interrupted", "{}", all[0]);
    assert_eq!(all[0]["stopped_on_node"], true, "{}", all[0]);
    no_docker_logs_left();
}

#[test]
fn a_reader_going_away_ends_a_follow_quietly() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    deploy_busybox(&tb, "3");
    let mut child = tool(&tb, "baleine-logs")
        .args(["3", "--follow", "--tail", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    following(1);
    let say = |word: &str| {
        sh_on(&tb, "3", &format!("echo {word} > /proc/1/fd/1"));
    };
    say("one");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("one"));
    // `| head -1`: the reader is gone; the next line finds no one.
    drop(lines);
    say("two");
    common::wait_until("baleine-logs gone with its reader", 30, || {
        child.try_wait().unwrap().is_some()
    });
    assert_eq!(child.wait().unwrap().code(), Some(0));
    no_docker_logs_left();
}

#[test]
fn files_go_in_and_results_come_out_of_every_node() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    deploy_busybox(&tb, "1-2");
    let src = scratch("cp-in");
    std::fs::write(src.join("params.txt"), "threshold=3\n").unwrap();
    std::fs::create_dir_all(src.join("scripts")).unwrap();
    std::fs::write(src.join("scripts/run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    Command::new("chmod")
        .args(["750"])
        .arg(src.join("scripts/run.sh"))
        .status()
        .unwrap();
    let params = src.join("params.txt");
    let scripts = src.join("scripts");
    let copied = ok(&run(
        &tb,
        "baleine-cp",
        &[
            "1-2",
            "--to",
            "/root/in",
            "--",
            params.to_str().unwrap(),
            scripts.to_str().unwrap(),
        ],
    ));
    assert_eq!(copied.len(), 2);
    assert_eq!(copied[0]["files"], 2, "{}", copied[0]);
    for node in ["fit01", "fit02"] {
        let seen = tb.ssh_ok(
            node,
            "docker exec container sh -c 'cat /root/in/params.txt; stat -c %a /root/in/scripts/run.sh; /root/in/scripts/run.sh'",
        );
        assert_eq!(seen, "threshold=3\n750\nran\n");
    }

    // A link given by name is copied as what it leads to, under its name;
    // `--to /` puts things at the container's root.
    std::os::unix::fs::symlink(&scripts, src.join("current")).unwrap();
    let current = src.join("current");
    ok(&run(
        &tb,
        "baleine-cp",
        &["1", "--to", "/", "--", current.to_str().unwrap()],
    ));
    assert_eq!(
        tb.ssh_ok("fit01", "docker exec container /current/run.sh"),
        "ran\n"
    );

    sh_on(
        &tb,
        "1-2",
        "mkdir -p /root/out/sub && echo {node} > /root/out/sub/result && chmod 777 /root/out/sub && chmod 666 /root/out/sub/result",
    );
    let dest = scratch("cp-out");
    let collected = ok(&run(
        &tb,
        "baleine-cp",
        &[
            "1-2",
            "--from",
            "/root/out",
            "--output-dir",
            dest.to_str().unwrap(),
        ],
    ));
    assert_eq!(collected.len(), 2);
    for node in ["fit01", "fit02"] {
        let result = dest.join(node).join("out/sub/result");
        assert_eq!(
            std::fs::read_to_string(&result).unwrap(),
            format!("{node}\n")
        );
        // Our umask, not the node's say-so (0777, 0666 there).
        use std::os::unix::fs::PermissionsExt;
        let umask = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&result), 0o666 & !umask);
        assert_eq!(mode(result.parent().unwrap()), 0o777 & !umask);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "received tars left: {leftovers:?}");

    // A path the container does not have: docker's own words.
    let out = run(
        &tb,
        "baleine-cp",
        &[
            "1",
            "--from",
            "/nonexistent",
            "--output-dir",
            dest.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let record = &records(&out)[0];
    assert_eq!(record["stage"], "copy", "{record}");
    assert!(
        record["error"].as_str().unwrap().contains("/nonexistent"),
        "{record}"
    );
}

#[test]
fn file_names_that_are_not_utf8_go_in_and_come_back_byte_for_byte() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    deploy_busybox(&tb, "1");
    let src = scratch("cp-latin1");
    // "café.txt" in Latin-1, as an old archive names it: not UTF-8.
    let name = OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(src.join(name), "latin\n").unwrap();
    let out = tool(&tb, "baleine-cp")
        .args(["1", "--to", "/root/in8", "--"])
        .arg(src.join(name))
        .output()
        .unwrap();
    assert_eq!(ok(&out)[0]["files"], 1);
    assert_eq!(
        // The name's bytes as the container's shell globs them (ls would
        // show `?` for a byte it cannot print).
        tb.ssh_ok(
            "fit01",
            "docker exec container sh -c 'for f in /root/in8/*; do echo \"${f##*/}\"; done' | od -An -c | tr -s ' '"
        ),
        " c a f 351 . t x t \\n\n"
    );
    let dest = scratch("cp-latin1-out");
    ok(&run(
        &tb,
        "baleine-cp",
        &[
            "1",
            "--from",
            "/root/in8",
            "--output-dir",
            dest.to_str().unwrap(),
        ],
    ));
    let back = dest.join("fit01/in8").join(name);
    assert_eq!(std::fs::read_to_string(back).unwrap(), "latin\n");
}

/// One raw tar header and its data, as an attacker writes them.
fn raw_entry(tar: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..107].copy_from_slice(b"0000755");
    header[108..115].copy_from_slice(b"0000000");
    header[116..123].copy_from_slice(b"0000000");
    header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = kind;
    header[157..157 + link.len()].copy_from_slice(link.as_bytes());
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| b as u32).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    tar.extend_from_slice(&header);
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

/// A node whose docker is an attacker's: `docker cp` answers with a tar
/// that tries every way out of the destination. Real ssh, real sshd; only
/// the node-side docker is the test's own script.
#[test]
fn a_hostile_node_s_tar_never_writes_outside_its_directory() {
    let tb = Testbed::get();
    let dir = scratch("hostile-node");
    let victim = dir.join("victim");
    let mut tar = Vec::new();
    raw_entry(&mut tar, "results/ok.txt", b'0', "", b"fine\n");
    raw_entry(&mut tar, "../../victim", b'0', "", b"pwned\n");
    raw_entry(
        &mut tar,
        &format!("{}", victim.join("abs").display()),
        b'0',
        "",
        b"pwned\n",
    );
    raw_entry(&mut tar, "results/out", b'2', "../../..", b"");
    raw_entry(&mut tar, "results/out/escape", b'0', "", b"pwned\n");
    raw_entry(&mut tar, "results/etc", b'2', "/etc", b"");
    raw_entry(
        &mut tar,
        "results/passwd",
        b'1',
        "../../../../etc/passwd",
        b"",
    );
    raw_entry(&mut tar, "results/dev", b'3', "", b"");
    tar.resize(tar.len() + 1024, 0);
    let evil = dir.join("evil.tar");
    std::fs::write(&evil, &tar).unwrap();
    let docker = dir.join("docker");
    std::fs::write(
        &docker,
        format!(
            "#!/bin/sh\ncase $1 in\n  inspect) echo running ;;\n  cp) cat {} ;;\n  *) exit 1 ;;\nesac\n",
            evil.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&docker)
        .status()
        .unwrap();
    let output = dir.join("collected");
    let out = tool(&tb, "baleine-cp")
        .env("BALEINE_DOCKER", &docker)
        .args(["fit01", "--from", "/root/results", "--output-dir"])
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let record = &records(&out)[0];
    assert_eq!(record["stage"], "copy", "{record}");
    let refused = record["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 6, "{record}");
    // What stayed inside is written: ok.txt, and results/out/escape, a
    // plain file once the link "out" was refused.
    assert_eq!(record["files"], 2, "{record}");
    assert!(output.join("fit01/results/out/escape").is_file());
    assert_eq!(
        std::fs::read_to_string(output.join("fit01/results/ok.txt")).unwrap(),
        "fine\n"
    );
    assert!(!victim.exists(), "a file was written outside");
    assert!(!dir.join("escape").exists() && !Path::new("/escape").exists());
    assert!(std::fs::symlink_metadata(output.join("fit01/results/etc")).is_err());
}

#[test]
fn rmi_deletes_tags_but_never_one_another_tag_still_names() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    deploy_busybox(&tb, "1");
    let name = unique("rmi");
    let (v1, v2) = (format!("{name}:v1"), format!("{name}:v2"));
    ok(&run(&tb, "baleine-save", &["-n", &v1, "fit01"]));
    // The same image under a second tag, pushed from the node.
    tb.ssh_ok(
        "fit01",
        &format!(
            "docker tag faraday.repo/{v1} faraday.repo/{v2} && docker push -q faraday.repo/{v2}"
        ),
    );

    let out = run(&tb, "baleine-rmi", &["-y", &v1]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let refused = &records(&out)[0];
    assert_eq!(refused["stage"], "referenced", "{refused}");
    assert_eq!(refused["also_tagged"][0], v2, "{refused}");

    // No terminal to ask on and no -y: nothing deleted, exit 2.
    let out = Command::new("setsid")
        .arg(common::binary("baleine-rmi"))
        .args([&v1, &v2])
        .env("BALEINE_CONFIG", tb.baleine_conf())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass -y"), "{}", stderr(&out));
    assert_eq!(ok(&run(&tb, "baleine-list", &[&name])).len(), 2);

    // baleine-list's lines on stdin: both tags go, together.
    let listed = run(&tb, "baleine-list", &[&name]);
    let mut rmi = tool(&tb, "baleine-rmi");
    rmi.arg("-y");
    let out = common::run_with_stdin(rmi, &String::from_utf8_lossy(&listed.stdout));
    let deleted = ok(&out);
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert!(deleted.iter().all(|r| r["deleted"] == true));
    assert_eq!(ok(&run(&tb, "baleine-list", &[&name])).len(), 0);
    // The registry the nodes push to serves it no more, and refuses deletes itself.
    let (status, _) = tb.http_get(&format!("{}/v2/{name}/manifests/v1", tb.repo_url));
    assert_eq!(status, 404);
    let digest = refused["digest"].as_str().unwrap();
    let url = format!("{}/v2/{name}/manifests/{digest}", tb.repo_url);
    assert_eq!(tb.http_delete(&url), 405);
}

#[test]
fn timestamps_come_from_docker_on_each_line() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    deploy_busybox(&tb, "4");
    let follower = Follower::start_with(&tb, "4", &["--timestamps"]);
    common::wait_until("docker logs --timestamps on the node", 30, || {
        !common::processes("docker .*logs --tail 0 --follow --timestamps container").is_empty()
    });
    sh_on(&tb, "4", "echo stamped > /proc/1/fd/1");
    common::wait_until("the stamped line", 30, || !follower.seen().is_empty());
    let line = &follower.seen()[0];
    assert_eq!(line["line"], "stamped", "{line}");
    let ts = line["ts"].as_str().unwrap_or_default();
    assert!(
        ts.starts_with("20") && ts.ends_with('Z') && ts.contains('.'),
        "RFC 3339 with sub-seconds: {line}"
    );
    common::signal(&follower.child, nix::sys::signal::Signal::SIGINT);
    assert_eq!(follower.wait().0, Some(0));
    no_docker_logs_left();
    // Without --follow, each line of the text starts with its time.
    let records = ok(&run(&tb, "baleine-logs", &["4", "--timestamps"]));
    let stdout = records[0]["stdout"].as_str().unwrap();
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("20") && l.contains("Z ")),
        "{stdout}"
    );
}
