//! Records as requests on the testbed: several images in one run, rollback, retry, ps | deploy, per-node files, the kept previous container.

mod common;

use common::harness::{Test, TestEnv};
use common::{record_of, unique, Testbed};
use serde_json::Value;

/// The command and image of the managed container on `node`.
fn running(tb: &Testbed, node: &str) -> String {
    tb.ssh_ok(
        node,
        "docker inspect --format '{{.State.Status}} {{.Config.Image}} {{json .Config.Cmd}}' container",
    )
    .trim()
    .to_owned()
}

/// A deploy on the testbed, its state files under `state`.
fn deploy(tb: &Testbed, state: &std::path::Path) -> Test {
    Test::new("baleine-deploy")
        .testbed(tb)
        .env("XDG_STATE_HOME", state.to_str().unwrap())
}

#[test]
fn three_images_in_one_run_each_group_pinned_to_its_own_digest() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    // The third image is built here, with baleine-build.
    let env = TestEnv::new();
    let context = env.write("ctx/Dockerfile", "FROM busybox\nRUN echo third > /third\n");
    let tag = unique("three");
    let built = Test::new("baleine-build")
        .testbed(&tb)
        .args(&[
            "-t",
            &format!("{tag}:v1"),
            context.parent().unwrap().to_str().unwrap(),
        ])
        .status(0)
        .run();
    let third = built[0]["image"].as_str().unwrap().to_owned();
    let state = env.path("state");
    let input = format!(
        "{{\"node\":\"fit01\",\"image\":\"busybox\"}}\n{{\"node\":\"fit02\",\"image\":\"busybox\"}}\n\
         {{\"node\":\"fit03\",\"image\":\"bigbox\"}}\n{{\"node\":\"fit04\",\"image\":\"{third}\"}}\n"
    );
    let records = deploy(&tb, &state)
        .args(&["--", "sleep", "100000"])
        .stdin(&input)
        .status(0)
        .nodes(4)
        .run();
    let (one, two) = (record_of(&records, "fit01"), record_of(&records, "fit02"));
    assert_eq!(one["digest"], two["digest"], "one group, one digest");
    // In the busybox group, one node resolved and the other ran that.
    assert_eq!(
        [one["pinned"].as_bool(), two["pinned"].as_bool()]
            .iter()
            .filter(|p| **p == Some(true))
            .count(),
        1
    );
    let (big, own) = (record_of(&records, "fit03"), record_of(&records, "fit04"));
    assert_eq!(big["image"], "bigbox");
    assert_ne!(big["digest"], one["digest"]);
    assert_eq!(own["image"], third.as_str());
    assert_eq!(
        own["digest"], built[0]["digest"],
        "the digest the build pushed"
    );
    for (node, image) in [
        ("fit01", "busybox"),
        ("fit03", "bigbox"),
        ("fit04", third.as_str()),
    ] {
        assert!(
            running(&tb, node).contains(image),
            "{node}: {}",
            running(&tb, node)
        );
    }
    assert_eq!(
        tb.ssh_ok("fit04", "docker exec container cat /third"),
        "third\n"
    );
}

#[test]
fn a_rollback_from_a_state_file_runs_the_previous_digests_exactly() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let env = TestEnv::new();
    let state = env.path("state");
    let first = deploy(&tb, &state)
        .args(&["-i", "busybox", "1-2", "--", "sleep", "100001"])
        .status(0)
        .nodes(2)
        .run();
    let first_file = std::fs::read_link(state.join("baleine/latest-deploy.jsonl")).unwrap();
    let second = deploy(&tb, &state)
        .args(&["-i", "bigbox", "1-2", "--", "sleep", "100002"])
        .status(0)
        .nodes(2)
        .run();
    for record in &second {
        // Each record says what it replaced.
        assert_eq!(record["previous_image"], "busybox", "{record}");
        assert_eq!(record["previous_digest"], first[0]["digest"], "{record}");
    }
    let earlier = std::fs::read_to_string(state.join("baleine").join(first_file)).unwrap();
    let back = deploy(&tb, &state).stdin(&earlier).status(0).nodes(2).run();
    for record in &back {
        assert_eq!(
            record["pinned"], true,
            "pinned by the record, no resolution: {record}"
        );
        assert_eq!(record["digest"], first[0]["digest"], "{record}");
        assert_eq!(record["command"], serde_json::json!(["sleep", "100001"]));
    }
    for node in ["fit01", "fit02"] {
        let now = running(&tb, node);
        assert!(
            now.contains(&format!("busybox@{}", first[0]["digest"].as_str().unwrap()))
                && now.contains("100001"),
            "{node}: {now}"
        );
    }
}

#[test]
fn a_retry_redeploys_only_the_failed_nodes_with_their_own_requests() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let env = TestEnv::new();
    let state = env.path("state");
    let input = "{\"node\":\"fit01\",\"image\":\"busybox\"}\n\
                 {\"node\":\"fit02\",\"image\":\"bigbox\",\"command\":[\"sleep\",\"100003\"]}\n";
    {
        let _docker = tb.stop("fit02/docker");
        let failed = deploy(&tb, &state)
            .args(&["--", "sleep", "100004"])
            .stdin(input)
            .status(1)
            .nodes(2)
            .run();
        assert_eq!(record_of(&failed, "fit02")["stage"], "pull");
    }
    let latest = std::fs::read_to_string(state.join("baleine/latest-deploy.jsonl")).unwrap();
    let retry: String = latest
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["ok"] == false)
        .map(|l| format!("{l}\n"))
        .collect();
    let records = deploy(&tb, &state).stdin(&retry).status(0).nodes(1).run();
    assert_eq!(records[0]["node"], "fit02");
    assert_eq!(records[0]["image"], "bigbox");
    assert!(
        running(&tb, "fit02").contains("100003"),
        "{}",
        running(&tb, "fit02")
    );
}

#[test]
fn ps_records_fed_to_deploy_restore_what_ran_after_a_destroy() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let env = TestEnv::new();
    let state = env.path("state");
    deploy(&tb, &state)
        .args(&[
            "-i",
            "busybox",
            "--options",
            "-e ROLE={node}",
            "1-2",
            "--",
            "sleep",
            "100005",
        ])
        .status(0)
        .nodes(2)
        .run();
    let before: Vec<Value> = Test::new("baleine-ps")
        .testbed(&tb)
        .args(&["1-2"])
        .status(0)
        .nodes(2)
        .run();
    for record in &before {
        // What the deploy asked for, from the container's labels.
        assert_eq!(record["image"], "busybox", "{record}");
        assert_eq!(record["command"], serde_json::json!(["sleep", "100005"]));
        let node = record["node"].as_str().unwrap();
        assert_eq!(
            record["options"],
            serde_json::json!(["-e", format!("ROLE={node}")])
        );
    }
    Test::new("baleine-destroy")
        .testbed(&tb)
        .args(&["-y", "1-2"])
        .status(0)
        .nodes(2)
        .run();
    let lines: String = before.iter().map(|r| format!("{r}\n")).collect();
    deploy(&tb, &state).stdin(&lines).status(0).nodes(2).run();
    for node in ["fit01", "fit02"] {
        assert!(
            running(&tb, node).contains("100005"),
            "{}",
            running(&tb, node)
        );
        let role = tb.ssh_ok(node, "docker exec container sh -c 'echo $ROLE'");
        assert_eq!(role.trim(), node);
    }
}

#[test]
fn each_node_gets_its_own_file() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let env = TestEnv::new();
    deploy(&tb, &env.path("state"))
        .args(&["-i", "busybox", "1-3", "--", "sleep", "100006"])
        .status(0)
        .run();
    env.write("configs/fit01.env", "ROLE=core\n");
    env.write("configs/fit02.env", "ROLE=gnb\n");
    let source = env.path("configs").join("{node}.env");
    let records = Test::new("baleine-cp")
        .testbed(&tb)
        .args(&["1-3", "--to", "/etc/exp", "--", source.to_str().unwrap()])
        .status(1)
        .nodes(3)
        .run();
    let missing = record_of(&records, "fit03");
    assert!(
        missing["error"].as_str().unwrap().contains("fit03.env"),
        "{missing}"
    );
    for (node, role) in [("fit01", "core"), ("fit02", "gnb")] {
        assert_eq!(record_of(&records, node)["ok"], true);
        let file = tb.ssh_ok(
            node,
            &format!("docker exec container cat /etc/exp/{node}.env"),
        );
        assert_eq!(file, format!("ROLE={role}\n"));
    }
}

#[test]
fn an_image_that_exits_at_once_leaves_the_previous_container_running() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let env = TestEnv::new();
    let state = env.path("state");
    deploy(&tb, &state)
        .args(&["-i", "busybox", "fit01", "--", "sleep", "100007"])
        .status(0)
        .run();
    let id = tb.ssh_ok("fit01", "docker inspect --format '{{.Id}}' container");
    // busybox's own command (sh) ends at once without a terminal.
    let records = deploy(&tb, &state)
        .args(&["-i", "busybox", "fit01"])
        .status(1)
        .nodes(1)
        .run();
    let record = &records[0];
    assert_eq!(
        (&record["stage"], &record["restored_previous"]),
        (&"run".into(), &true.into()),
        "{record}"
    );
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("exited at once"), "{error}");
    assert!(
        error.contains("after --"),
        "the error suggests a command: {error}"
    );
    assert!(
        error.contains("the previous container is back, as it was"),
        "{error}"
    );
    // The very container that ran before runs again, and nothing is left aside.
    assert_eq!(
        tb.ssh_ok("fit01", "docker inspect --format '{{.Id}}' container"),
        id
    );
    assert!(
        running(&tb, "fit01").starts_with("running "),
        "{}",
        running(&tb, "fit01")
    );
    let names = tb.ssh_ok("fit01", "docker ps -a --format '{{.Names}}'");
    assert!(!names.contains("baleine-previous"), "{names}");
}

#[test]
fn a_container_left_aside_by_a_cut_deploy_is_put_back_and_never_lost() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let env = TestEnv::new();
    let state = env.path("state");
    // What a deploy cut after setting the old container aside leaves: no
    // managed container, the old one stopped under the kept-aside name.
    tb.ssh_ok(
        "fit02",
        "docker rm -f container container.baleine-previous >/dev/null 2>&1; \
         docker run -d --name container.baleine-previous busybox sleep 100008 >/dev/null && \
         docker stop -t 0 container.baleine-previous >/dev/null",
    );
    let kept = tb.ssh_ok(
        "fit02",
        "docker inspect --format '{{.Id}}' container.baleine-previous",
    );
    // A new one that is gone at once (--rm) does not hold: the kept one is
    // back under its name, stopped as it was.
    let records = deploy(&tb, &state)
        .args(&[
            "-i",
            "busybox",
            "--options",
            "--rm",
            "fit02",
            "--",
            "sh",
            "-c",
            "exit 0",
        ])
        .status(1)
        .nodes(1)
        .run();
    assert_eq!(records[0]["restored_previous"], true, "{}", records[0]);
    assert!(
        records[0]["error"]
            .as_str()
            .unwrap()
            .contains("is gone at once"),
        "{}",
        records[0]
    );
    assert_eq!(
        tb.ssh_ok("fit02", "docker inspect --format '{{.Id}}' container"),
        kept
    );
    assert!(
        running(&tb, "fit02").starts_with("exited "),
        "{}",
        running(&tb, "fit02")
    );
    // One that holds replaces it, and nothing is left aside.
    deploy(&tb, &state)
        .args(&["-i", "busybox", "fit02", "--", "sleep", "100009"])
        .status(0)
        .run();
    assert!(
        running(&tb, "fit02").contains("100009"),
        "{}",
        running(&tb, "fit02")
    );
    let names = tb.ssh_ok("fit02", "docker ps -a --format '{{.Names}}'");
    assert!(!names.contains("baleine-previous"), "{names}");
}

/// A container made by someone else, whose image label holds a backslash,
/// a tab, a newline and a `|`: the record says exactly what it replaced,
/// and none of that text passes for another field or container.
#[test]
fn what_a_deploy_replaced_is_said_exactly_whatever_its_labels_hold() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let env = TestEnv::new();
    let label = "a\\b|c\td\n/container.baleine-previous|running|\nrestored_previous=true";
    let quoted = baleine::remote::quote::quote_word(&format!("org.r2lab.baleine.image={label}"));
    tb.ssh_ok(
        "fit02",
        &format!(
            "docker rm -f container container.baleine-previous >/dev/null 2>&1; \
             docker run -d --name container --label {quoted} busybox sleep 100003 >/dev/null"
        ),
    );
    let records = deploy(&tb, &env.path("state"))
        .args(&["-i", "busybox", "fit02", "--", "sleep", "100004"])
        .status(0)
        .nodes(1)
        .run();
    assert_eq!(records[0]["previous_image"], label, "{}", records[0]);
    assert_eq!(records[0]["replaced"], true, "{}", records[0]);
    assert!(
        records[0].get("restored_previous").is_none(),
        "{}",
        records[0]
    );
    let now = running(&tb, "fit02");
    assert!(now.contains("100004"), "{now}");
}
