//! baleine 0.8's command lines through `baleine`, with 0.8's example configuration, and baleine-build on the testbed.

mod common;

use common::{record_of, records, stderr, tool, unique, Loopback, Testbed};
use std::path::PathBuf;
use std::process::{Command, Output};

/// The testbed's configuration plus the lines of 0.8's example file that
/// the testbed's does not set (setup_files/gateway/baleine.example.conf).
fn config_0_8(tb: &Testbed) -> PathBuf {
    let path = std::env::temp_dir()
        .join(unique("baleine-0.8"))
        .with_extension("conf");
    let text = std::fs::read_to_string(tb.baleine_conf()).unwrap()
        + "DEFAULT_BOOTSTRAP_IMAGE=\"baleine\"\nSAVE_PORT = 80\nDNS_ADDR = \"192.168.3.100\"\n";
    std::fs::write(&path, text).unwrap();
    path
}

/// `baleine ARGS…` with 0.8's configuration.
fn baleine(tb: &Testbed, args: &[&str]) -> Command {
    let mut command = tool(tb, "baleine");
    command.env("BALEINE_CONFIG", config_0_8(tb)).args(args);
    command
}

fn run(mut command: Command) -> Output {
    command.output().expect("baleine runs")
}

/// The new form `baleine` said, once.
fn said_new_form(out: &Output, expected: &str) {
    let err = stderr(out);
    assert_eq!(
        err.matches("a baleine 0.8 command line; today it reads: ")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains(expected), "{err}");
}

#[test]
fn deploy_and_destroy_as_0_8_wrote_them() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let out = run(baleine(
        &tb,
        &[
            "deploy",
            "-i",
            "busybox",
            "--nodes",
            "1-2",
            "--options",
            "-e",
            "A=1",
            "-e",
            "'B=two words'",
            "--command",
            "sh",
            "-c",
            "echo $A; sleep 100000",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    said_new_form(
        &out,
        "baleine-deploy -i busybox --options '-e A=1 -e '\\''B=two words'\\''' 1-2 -- sh -c",
    );
    let deployed = records(&out);
    assert_eq!(deployed.len(), 2);
    for node in &tb.nodes[..2] {
        assert_eq!(record_of(&deployed, node)["ok"], true);
        // 0.8 joined --options' words for the node's shell to split.
        let env = tb.ssh_ok(node, "docker exec container sh -c 'echo \"$A|$B\"'");
        assert_eq!(env, "1|two words\n");
        // DNS_ADDR from 0.8's example file: --dns.
        let resolv = tb.ssh_ok(node, "docker exec container cat /etc/resolv.conf");
        assert!(resolv.contains("nameserver 192.168.3.100"), "{resolv}");
    }

    // 0.8's -f (an alias of -y): no question asked.
    let out = run(baleine(&tb, &["destroy", "-f", "--nodes", "1-2"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    said_new_form(&out, "baleine-destroy -y 1-2");
    assert_eq!(records(&out).len(), 2);
    for node in &tb.nodes[..2] {
        let left = tb.ssh_ok(node, "docker ps -aq --filter name=^container$");
        assert_eq!(left, "", "{node} still has the container");
    }
}

#[test]
fn bootstrap_without_value_loads_the_default_rhubarbe_image() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    // rhubarbe load/wait need R2Lab's hardware: a stand-in records the call.
    let dir = std::env::temp_dir().join(unique("rhubarbe-0.8"));
    std::fs::create_dir_all(&dir).unwrap();
    let stand_in = dir.join("rhubarbe");
    let calls = dir.join("calls");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\n[ \"$1\" = wait ] && for n in \"$@\"; do echo \"<Node $n>:ssh OK\"; done\nexit 0\n",
            calls.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&stand_in)
        .status()
        .unwrap();
    let node = tb.nodes[0].as_str();
    let out = run({
        let mut c = baleine(
            &tb,
            &[
                "deploy",
                "-i",
                "busybox",
                "--bootstrap",
                "--nodes",
                node,
                "--command",
                "sleep",
                "100000",
            ],
        );
        c.env("BALEINE_RHUBARBE", &stand_in);
        c
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    said_new_form(&out, "--bootstrap default");
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert!(
        calls.starts_with(&format!("load -i baleine {node}\n")),
        "{calls}"
    );
}

#[test]
fn save_and_list_keep_0_8_names_and_plain_variables() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[0].as_str();
    let out = tool(&tb, "baleine-deploy")
        .args(["-i", "busybox", node, "--", "sleep", "100000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let name = unique("compat");
    let out = run(baleine(&tb, &["save", "--name", &name, "--node", node]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    said_new_form(&out, &format!("baleine-save -n {name} {node}"));
    // SAVE_PORT = 80 is the protocol's default: not in the name, as in 0.8.
    let saved = &records(&out)[0];
    assert_eq!(
        saved["image"],
        format!("faraday.repo/{name}:latest"),
        "{saved}"
    );

    // `REGISTRY_URL=… baleine list`: a plain variable overrides the file.
    let broken = std::env::temp_dir()
        .join(unique("broken"))
        .with_extension("conf");
    std::fs::write(
        &broken,
        std::fs::read_to_string(config_0_8(&tb)).unwrap() + "REGISTRY_URL = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    let out = run({
        let mut c = baleine(&tb, &["list", "-d", &name]);
        c.env("BALEINE_CONFIG", &broken)
            .env("REGISTRY_URL", &tb.repo_url);
        c
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("0.8 command line"),
        "list -d reads the same today"
    );
    let lines = records(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["image"], saved["image"]);
    assert_eq!(lines[0]["digest"], saved["digest"]);
}

/// A build context in a fresh directory: a Dockerfile whose RUN leaves a
/// mark and whose command keeps the container up.
fn context(dockerfile: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("build-context"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.join("input.txt"), "from the context\n").unwrap();
    dir
}

const GOOD: &str = "FROM busybox\nCOPY input.txt /input.txt\nRUN echo built > /built\nCMD [\"sleep\", \"100000\"]\n";

fn deployed_marks(tb: &Testbed, image: &str, node: &str) -> String {
    let out = tool(tb, "baleine-deploy")
        .args(["-i", image, node])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    tb.ssh_ok(node, "docker exec container cat /built /input.txt")
}

#[test]
fn build_as_0_8_wrote_it_deploys_on_a_node() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let dir = context(GOOD);
    let name = unique("built");
    let (v1, v2) = (format!("{name}:v1"), format!("{name}:v2"));
    let out = run({
        let mut c = baleine(&tb, &["build", "-f", "Dockerfile", "--tags", &v1, &v2]);
        c.current_dir(&dir);
        c
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    said_new_form(
        &out,
        &format!("baleine-build -f Dockerfile -t {v1} -t {v2} ."),
    );
    let record = &records(&out)[0];
    assert_eq!(record["ok"], true, "{record}");
    assert_eq!(record["built_on"], "gateway");
    assert_eq!(record["images"][1], format!("faraday.repo/{v2}"));
    let digest = record["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"), "{record}");

    let node = tb.nodes[2].as_str();
    assert_eq!(
        deployed_marks(&tb, &format!("faraday.repo/{v2}"), node),
        "built\nfrom the context\n"
    );
    let out = tool(&tb, "baleine-ps").arg(node).output().unwrap();
    assert_eq!(
        records(&out)[0]["digest"],
        digest,
        "deployed other bits than built"
    );
}

#[test]
fn build_from_a_url_as_0_8_wrote_it() {
    let tb = Testbed::get();
    let dir = context(GOOD);
    let tarball = dir.with_extension("tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let body = std::fs::read(&tarball).unwrap();
    let server = Loopback::serve(move |_| (200, vec![], body.clone()));
    let url = format!("{}/context.tar", server.url());
    let tag = format!("{}:v1", unique("from-url"));
    let out = run(baleine(&tb, &["build", "-u", &url, "--tags", &tag]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    said_new_form(&out, &format!("baleine-build -t {tag} {url}"));
    assert_eq!(records(&out)[0]["ok"], true);
}

#[test]
fn build_on_a_node_sends_the_context_and_never_overwrites_a_tag() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let dir = context("FROM busybox\nRUN false\n");
    // The Dockerfile used lives outside the context: it travels with it.
    let outside = dir.with_extension("Dockerfile");
    std::fs::write(&outside, GOOD).unwrap();
    let tag = format!("{}:arm", unique("on-node"));
    let build = |extra: &[&str]| {
        let mut c = tool(&tb, "baleine-build");
        c.arg("-f")
            .arg(&outside)
            .args(["-t", &tag, "--on", "fit02"])
            .args(extra)
            .arg(&dir);
        let child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("baleine-build runs");
        let pid = child.id();
        (child.wait_with_output().unwrap(), pid)
    };
    // The temporary tars of one baleine-build process (other tests of this
    // file, running beside, pack their own).
    let tars_of = |pid: u32| -> Vec<std::ffi::OsString> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&format!("baleine-{pid}-")) && n.ends_with(".tar")
            })
            .collect()
    };
    let (out, pid) = build(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = records(&out)[0].clone();
    assert_eq!(first["built_on"], "fit02", "{first}");
    assert_eq!(
        deployed_marks(&tb, first["image"].as_str().unwrap(), "fit01"),
        "built\nfrom the context\n"
    );
    // The context's tar was a temporary file of the gateway's: gone.
    let left = tars_of(pid);
    assert!(left.is_empty(), "{left:?}");

    let (out, _) = build(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let refused = &records(&out)[0];
    assert_eq!(refused["stage"], "exists", "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("--force"));
    let (out, _) = build(&["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_failing_step_is_a_failed_record_naming_it_with_the_whole_log_in_the_file() {
    let tb = Testbed::get();
    let dir = context("FROM busybox\nRUN echo before-the-failure\nRUN exit 3\n");
    let log = dir.join("build.log");
    let out = run({
        let mut c = tool(&tb, "baleine-build");
        c.args(["-t", &format!("{}:bad", unique("failing"))])
            .arg("--log")
            .arg(&log)
            .arg(&dir);
        c
    });
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let record = &records(&out)[0];
    assert_eq!(record["ok"], false);
    assert_eq!(record["stage"], "build", "{record}");
    let error = record["error"].as_str().unwrap();
    assert!(
        error.contains("RUN exit 3") || error.contains("exit code: 3"),
        "{error}"
    );
    assert!(!record["log_tail"].as_array().unwrap().is_empty());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("before-the-failure"), "{log}");
}

#[test]
fn ctrl_c_stops_a_build_on_a_node_and_what_it_ran_there() {
    let tb = Testbed::get();
    // A step that runs until stopped, recognisable among the machine's
    // processes by its number of seconds.
    let seconds = 200_000 + std::process::id() % 100_000;
    let marker = unique("stopped");
    let dir = context(&format!("FROM busybox\nRUN sleep {seconds}\n"));
    let mut child = tool(&tb, "baleine-build")
        .args(["-t", &format!("{marker}:v1"), "--on", "fit04"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = format!("^sleep {seconds}$");
    common::wait_until("the build step running on the node", 60, || {
        !common::processes(&running).is_empty()
    });
    common::signal(&child, nix::sys::signal::Signal::SIGINT);
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}");
    let record: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(record["stage"], "interrupted", "{record}");
    common::wait_until("the build step stopped on the node", 30, || {
        common::processes(&running).is_empty()
    });
}
