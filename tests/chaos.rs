//! Chaos: deploy, exec, save, ps and destroy run again and again on the testbed while faults strike at random moments.
//!
//! Every round picks a tool, a fault and a moment from a seeded generator
//! (the seed is printed: `CHAOS_SEED=N` replays a run), runs the tool on
//! every node, strikes, repairs, then checks what a user relies on:
//! exactly one record per node, a stage and a real error in every failed
//! record, an exit status that matches the records, no ssh or docker
//! process of ours left on the gateway (kept connections aside), nothing
//! the tool started still running on a node, the managed container either
//! the old or the new one and no stray, and a saved tag either complete in
//! the registry (its digest the record's) or absent.
//!
//! `make test` runs a short round set on its 4 nodes; `make chaos` runs
//! `CHAOS_ROUNDS` (default 30) on a 37-node testbed and writes the totals to
//! tests/chaos/results/.

mod common;

use common::{processes, tool, unique, Testbed};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*), so a printed seed replays a run.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// A node's sshd killed, listener and live sessions, restarted after.
    SshdKilled,
    /// A node's dockerd frozen (SIGSTOP), thawed after a while.
    DockerFrozen,
    /// The pull-through mirror stopped, then restarted.
    MirrorStopped,
    /// The repo registry stopped, then restarted.
    RepoStopped,
    /// Our own ssh sessions killed (not the kept connections).
    OurSshKilled,
    /// Ctrl-C to the tool.
    Interrupt,
    /// Our reader goes away after the first record.
    PipeClosed,
    /// No fault: the baseline must be all ok.
    None,
}

/// The faults any tool meets.
const FAULTS: [Fault; 6] = [
    Fault::SshdKilled,
    Fault::DockerFrozen,
    Fault::OurSshKilled,
    Fault::Interrupt,
    Fault::PipeClosed,
    Fault::None,
];

/// The faults `tool` can meet: a registry stopped only where the tool uses
/// it (the mirror mid-pull for deploy, the repo mid-push for save), so that
/// those faults strike as often as the others instead of hitting a tool
/// that never talks to that registry.
fn faults_for(tool: &str) -> Vec<Fault> {
    let mut faults = FAULTS.to_vec();
    match tool {
        "deploy" => faults.push(Fault::MirrorStopped),
        "save" => faults.push(Fault::RepoStopped),
        _ => {}
    }
    faults
}

const TOOLS: [&str; 5] = ["deploy", "exec", "save", "ps", "destroy"];

/// What one round found wrong, if anything.
#[derive(Default, Debug)]
struct Tally {
    rounds: usize,
    faults: usize,
    lost: usize,
    leftovers: Vec<String>,
    wrong: Vec<String>,
    /// How often each tool met each fault (struck while it ran).
    struck: std::collections::BTreeMap<String, usize>,
}

fn args_for(tool_name: &str, round: usize) -> Vec<String> {
    let words: Vec<&str> = match tool_name {
        "deploy" => vec![
            "-i",
            "bigbox",
            "--timeout",
            "60",
            "-a",
            "--",
            "sleep",
            "3600",
        ],
        "exec" => vec![
            "--timeout",
            "20",
            "-a",
            "--",
            "sh",
            "-c",
            "sleep 3; echo done",
        ],
        "ps" => vec!["-a", "--timeout", "20"],
        "destroy" => vec!["-y", "-a", "--timeout", "30"],
        _ => vec![],
    };
    let mut args: Vec<String> = words.into_iter().map(String::from).collect();
    if tool_name == "save" {
        args = vec![
            "-n".into(),
            format!("chaos-{}:r{round}", std::process::id()),
            "-a".into(),
            "--timeout".into(),
            "60".into(),
        ];
    }
    args
}

/// Strikes `fault` on the testbed, returns what undoes it.
fn strike(tb: &Testbed, fault: Fault, node: &str, child: &Child) -> Box<dyn FnOnce()> {
    let control = |verb: &str, target: &str| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/testbed");
        let _ = Command::new(script)
            .args([verb, target])
            .env("BALEINE_TESTBED_DIR", &tb.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    let dir = tb.dir.clone();
    match fault {
        Fault::SshdKilled => {
            control("stop", &format!("{node}/sshd"));
            let node = node.to_owned();
            Box::new(move || {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/testbed");
                let _ = Command::new(script)
                    .args(["start", &format!("{node}/sshd")])
                    .env("BALEINE_TESTBED_DIR", &dir)
                    .stdout(Stdio::null())
                    .status();
            })
        }
        Fault::DockerFrozen => {
            let pid = std::fs::read_to_string(tb.dir.join(format!("pids/{node}.docker")))
                .unwrap_or_default()
                .trim()
                .to_owned();
            let _ = Command::new("kill").args(["-STOP", &pid]).status();
            Box::new(move || {
                let _ = Command::new("kill").args(["-CONT", &pid]).status();
            })
        }
        Fault::MirrorStopped | Fault::RepoStopped => {
            let name = if fault == Fault::MirrorStopped {
                "mirror"
            } else {
                "repo"
            };
            control("stop", name);
            Box::new(move || {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/testbed");
                let _ = Command::new(script)
                    .args(["start", name])
                    .env("BALEINE_TESTBED_DIR", &dir)
                    .stdout(Stdio::null())
                    .status();
            })
        }
        Fault::OurSshKilled => {
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &child.id().to_string(), "-x", "ssh"])
                .status();
            Box::new(|| {})
        }
        Fault::Interrupt => {
            common::signal(child, Signal::SIGINT);
            Box::new(|| {})
        }
        Fault::PipeClosed | Fault::None => Box::new(|| {}),
    }
}

/// The processes our run left: ssh sessions (kept masters aside) and docker
/// clients on the gateway side, and anything on the nodes marked with a
/// baleine run (see remote::protocol::session_command).
fn leftovers(tb: &Testbed) -> Vec<String> {
    let config = tb.ssh_config().display().to_string();
    let mut found: Vec<String> = processes(&config)
        .into_iter()
        .filter(|p| !p.contains(" -N ") && !p.contains("ControlMaster=yes"))
        .collect();
    // Processes on the nodes that carry a run's mark: none may outlive the run.
    let marked = Command::new("sh")
        .arg("-c")
        .arg(
            "for e in /proc/[0-9]*/environ; do \
             if tr '\\0' '\\n' <\"$e\" 2>/dev/null | grep -q '^BALEINE_RUN=\\|^BALEINE_TIMER='; then \
             p=${e#/proc/}; p=${p%/environ}; echo \"$p $(tr '\\0' ' ' </proc/$p/cmdline 2>/dev/null)\"; fi; done",
        )
        .output()
        .unwrap();
    found.extend(
        String::from_utf8_lossy(&marked.stdout)
            .lines()
            .map(|l| format!("on a node: {l}")),
    );
    found
}

/// Removes every tag and digest of `image` from a node's engine (a
/// container running it keeps its layers).
fn forget_image(tb: &Testbed, node: &str, image: &str) {
    let socket = format!(
        "unix://{}",
        tb.dir.join(format!("n/{node}/docker.sock")).display()
    );
    let ids = Command::new("docker")
        .args(["-H", &socket, "images", "-q", image])
        .output()
        .unwrap();
    for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
        let _ = Command::new("docker")
            .args(["-H", &socket, "rmi", "-f", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The containers of a node (names), through its engine's socket.
fn containers(tb: &Testbed, node: &str) -> Vec<String> {
    let socket = tb.dir.join(format!("n/{node}/docker.sock"));
    let out = Command::new("docker")
        .args(["-H", &format!("unix://{}", socket.display())])
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// Runs one round; adds what it found to `tally`.
fn round(tb: &Testbed, dice: &mut Dice, number: usize, tally: &mut Tally) {
    let tool_name = TOOLS[number % TOOLS.len()];
    let faults = faults_for(tool_name);
    let fault = faults[dice.below(faults.len() as u64) as usize];
    let node = tb.nodes[dice.below(tb.nodes.len() as u64) as usize].clone();
    let delay = Duration::from_millis(dice.below(1500));
    let args = args_for(tool_name, number);
    if tool_name == "deploy" {
        // Every deploy pulls (through the mirror), so faults land mid-pull.
        for n in &tb.nodes {
            forget_image(tb, n, "bigbox");
        }
    }
    println!("chaos: round {number}: {tool_name} {args:?}, {fault:?} on {node} after {delay:?}");
    let before: Vec<Option<Managed>> = tb.nodes.iter().map(|n| managed(tb, n)).collect();
    let mut child = tool(tb, &format!("baleine-{tool_name}"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tool runs");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    // The first record, or the end, or the fault's moment, whichever first.
    let mut lines = Vec::new();
    let started = Instant::now();
    let mut undo: Option<Box<dyn FnOnce()>> = None;
    let mut struck = false;
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut line = String::new();
        while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            lines.push(std::mem::take(&mut line));
            if fault == Fault::PipeClosed {
                break; // dropping stdout closes our end of the pipe
            }
        }
        lines
    });
    while started.elapsed() < delay && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(20)); // the fault's moment, not a synchronisation
    }
    if child.try_wait().unwrap().is_none() && fault != Fault::None {
        tally.faults += 1;
        *tally
            .struck
            .entry(format!("{tool_name} × {fault:?}"))
            .or_default() += 1;
        struck = true;
        undo = Some(strike(tb, fault, &node, &child));
    }
    // Repair after a while, so frozen engines and stopped services come back
    // within the run (the tools' timeouts bound the rest).
    let repair_after = Duration::from_millis(1500 + dice.below(3000));
    let repaired_at = Instant::now() + repair_after;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= repaired_at {
            if let Some(undo) = undo.take() {
                undo();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(undo) = undo.take() {
        undo();
    }
    lines.extend(reader.join().unwrap());
    let err = stderr_reader.join().unwrap();
    let mut wrong = |what: String| {
        tally
            .wrong
            .push(format!("round {number} ({tool_name}, {fault:?}): {what}"))
    };
    let records: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if records.len() != lines.len() {
        wrong(format!("a line that is not JSON: {lines:?}"));
    }
    if fault != Fault::PipeClosed {
        for n in &tb.nodes {
            let count = records.iter().filter(|r| r["node"] == n.as_str()).count();
            if count != 1 {
                tally.lost += usize::from(count == 0);
                wrong(format!("{count} records for {n}; stderr: {err}"));
            }
        }
        let failed = records.iter().any(|r| r["ok"] != true);
        let expected = match (fault, failed) {
            (Fault::Interrupt, _) if struck => vec![130],
            (_, true) => vec![1],
            (_, false) => vec![0],
        };
        if !expected.contains(&status.code().unwrap_or(-1)) {
            wrong(format!("exit {:?} with records {records:?}", status.code()));
        }
    }
    for record in records.iter().filter(|r| r["ok"] == false) {
        let stage = record["stage"].as_str().unwrap_or_default();
        let error = record["error"].as_str().unwrap_or_default();
        if stage.is_empty() || error.trim().is_empty() {
            wrong(format!("a failure without stage or error: {record}"));
        }
    }
    // What the run started is gone once it has ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    let left = loop {
        let left = leftovers(tb);
        if left.is_empty() || Instant::now() >= deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for item in left {
        tally
            .leftovers
            .push(format!("round {number} ({tool_name}, {fault:?}): {item}"));
    }
    for (n, before) in tb.nodes.iter().zip(&before) {
        let names = containers(tb, n);
        if names.len() > 1 || names.iter().any(|c| c != "container") {
            wrong(format!("{n} has containers {names:?}"));
        }
        // The managed container is the old one or the new one: which one
        // the record says.
        let after = managed(tb, n);
        let record = records.iter().find(|r| r["node"] == n.as_str());
        let ok = record.is_some_and(|r| r["ok"] == true);
        // A failed deploy that says it left the old container must have.
        let kept = record.is_some_and(|r| {
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("was left as it was"))
        });
        let new = |m: &Option<Managed>| {
            m.as_ref().is_some_and(|m| {
                Some(&m.id) != before.as_ref().map(|b| &b.id) && m.image.starts_with("bigbox")
            })
        };
        let fine = match tool_name {
            "deploy" if ok => new(&after),
            "deploy" if kept => after == *before,
            // Cut after `remove` (it says so), or a frozen engine that
            // carried out a queued removal once thawed: none is allowed.
            "deploy" => after == *before || new(&after) || after.is_none(),
            "destroy" if ok => after.is_none(),
            "destroy" => after == *before || after.is_none(),
            _ => after == *before,
        };
        if !fine {
            wrong(format!(
                "{n}: managed container {after:?}, before the run {before:?}, the record ok: {ok}"
            ));
        }
    }
    if tool_name == "save" {
        for record in &records {
            let image = record["image"]
                .as_str()
                .or(record["local_image"].as_str())
                .unwrap_or_default();
            let (name, tag) = image
                .split_once('/')
                .and_then(|(_, rest)| rest.rsplit_once(':'))
                .unwrap_or_default();
            if name.is_empty() {
                continue;
            }
            let digest = served_digest(tb, name, tag);
            if record["ok"] == true && digest.as_deref() != record["digest"].as_str() {
                wrong(format!("{image}: served {digest:?}, record {record}"));
            }
            // Served means complete: every blob the manifest names is there.
            if digest.is_some() {
                for blob in missing_blobs(tb, name, tag) {
                    wrong(format!("{image}: served without its blob {blob}"));
                }
            }
        }
    }
    tally.rounds += 1;
}

/// A node's managed container: its id and the image it was created from.
#[derive(Debug, PartialEq)]
struct Managed {
    id: String,
    image: String,
}

fn managed(tb: &Testbed, node: &str) -> Option<Managed> {
    let socket = tb.dir.join(format!("n/{node}/docker.sock"));
    let out = Command::new("docker")
        .args(["-H", &format!("unix://{}", socket.display())])
        .args([
            "inspect",
            "--format",
            "{{.Id}} {{.Config.Image}}",
            "container",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (id, image) = text.trim().split_once(' ')?;
    Some(Managed {
        id: id.to_owned(),
        image: image.to_owned(),
    })
}

/// The blobs (config and layers) that name:tag's manifest names but the
/// repo registry does not have.
fn missing_blobs(tb: &Testbed, name: &str, tag: &str) -> Vec<String> {
    let out = Command::new("curl")
        .args(["-s", "-H", ACCEPT])
        .arg(format!("{}/v2/{name}/manifests/{tag}", tb.repo_url))
        .output()
        .unwrap();
    let manifest = String::from_utf8_lossy(&out.stdout);
    let Ok(manifest) = serde_json::from_str::<Value>(&manifest) else {
        return vec![format!("(a manifest that is not JSON: {manifest})")];
    };
    let config = manifest["config"]["digest"].as_str().map(String::from);
    let layers = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["digest"].as_str().map(String::from));
    config
        .into_iter()
        .chain(layers)
        .filter(|digest| {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I"])
                .arg(format!("{}/v2/{name}/blobs/{digest}", tb.repo_url))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout) != "200"
        })
        .collect()
}

/// The manifests a save pushes, as a registry client asks for them.
const ACCEPT: &str = "Accept: application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.oci.image.manifest.v1+json";

/// The digest the repo registry serves for name:tag, if any.
fn served_digest(tb: &Testbed, name: &str, tag: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sI", "-H", ACCEPT])
        .arg(format!("{}/v2/{name}/manifests/{tag}", tb.repo_url))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("docker-content-digest:")
            .map(|d| d.trim().to_owned())
    })
}

/// Runs `rounds` rounds from `seed` and returns the tally.
fn chaos(tb: &Testbed, rounds: usize, seed: u64) -> Tally {
    println!(
        "chaos: seed {seed} (CHAOS_SEED={seed} replays it), {rounds} rounds on {} nodes",
        tb.nodes.len()
    );
    let mut dice = Dice(seed | 1);
    let mut tally = Tally::default();
    for number in 0..rounds {
        round(tb, &mut dice, number, &mut tally);
    }
    tally
}

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

fn report(tb: &Testbed, tally: &Tally, seed: u64) -> String {
    let mut text = format!(
        "# chaos, {} nodes, seed {seed}\n\n| rounds | faults | nodes | records lost | leftovers | other problems |\n| --- | --- | --- | --- | --- | --- |\n| {} | {} | {} | {} | {} | {} |\n",
        tb.nodes.len(),
        tally.rounds,
        tally.faults,
        tb.nodes.len(),
        tally.lost,
        tally.leftovers.len(),
        tally.wrong.len()
    );
    text += "\n| tool × fault struck | rounds |\n| --- | --- |\n";
    for (what, count) in &tally.struck {
        text += &format!("| {what} | {count} |\n");
    }
    for line in tally.leftovers.iter().chain(&tally.wrong) {
        text += &format!("\n- {line}");
    }
    text
}

/// The short variant of `make test`: a few rounds on the shared nodes.
#[test]
fn a_few_rounds_of_chaos_lose_no_record_and_leave_nothing_behind() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let seed = seed();
    let rounds = std::env::var("CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let tally = chaos(&tb, rounds, seed);
    let text = report(&tb, &tally, seed);
    println!("{text}");
    if let Ok(dir) = std::env::var("CHAOS_RESULTS") {
        let _ = std::fs::create_dir_all(&dir);
        let name = format!("{dir}/{}.md", unique("chaos"));
        std::fs::write(name, &text).unwrap();
    }
    assert!(
        tally.lost == 0 && tally.leftovers.is_empty() && tally.wrong.is_empty(),
        "{text}"
    );
}
