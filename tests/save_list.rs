//! baleine-save and baleine-list against real registries: the testbed's repo, and scratch ones.

mod common;

use common::{record_of, records, stderr, tool, unique, ScratchRegistry, Testbed};
use std::process::Command;

fn run(tb: &Testbed, name: &str, args: &[&str]) -> std::process::Output {
    tool(tb, name).args(args).output().expect("tool runs")
}

/// Runs busybox as the managed container on `nodes`.
fn deploy_busybox(tb: &Testbed, nodes: &[&str]) {
    let mut args = vec!["-i", "busybox"];
    args.extend(nodes);
    args.extend(["--", "sleep", "100000"]);
    let out = run(tb, "baleine-deploy", &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn lines_of(out: &std::process::Output) -> Vec<serde_json::Value> {
    records(out)
}

#[test]
fn a_saved_container_deploys_on_another_node_with_its_changes() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (source, target) = (tb.nodes[0].as_str(), tb.nodes[1].as_str());
    deploy_busybox(&tb, &[source]);
    tb.ssh_ok(
        source,
        "docker exec container sh -c 'echo saved-state > /root/marker'",
    );
    let name = unique("saved");
    let out = run(&tb, "baleine-save", &["-n", &format!("{name}:v1"), source]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record = &records(&out)[0];
    assert_eq!(record["ok"], true, "{record}");
    assert_eq!(record["image"], format!("faraday.repo/{name}:v1"));
    assert!(record["digest"].as_str().unwrap().starts_with("sha256:"));

    let image = record["image"].as_str().unwrap();
    let out = run(
        &tb,
        "baleine-deploy",
        &["-i", image, target, "--", "sleep", "100000"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        records(&out)[0]["digest"],
        record["digest"],
        "deployed other bits than saved"
    );
    assert_eq!(
        tb.ssh_ok(target, "docker exec container cat /root/marker"),
        "saved-state\n"
    );
    let label = tb.ssh_ok(target, "docker inspect --format '{{index .Config.Labels \"org.r2lab.baleine.source-node\"}}' container");
    assert_eq!(label.trim(), source);
}

#[test]
fn what_commit_leaves_out_is_named_and_kept_on_request() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let (source, target) = (tb.nodes[0].as_str(), tb.nodes[1].as_str());
    deploy_busybox(&tb, &[source]);
    // R2Lab's run options bind-mount the node's container_fs on /var.
    tb.ssh_ok(
        source,
        "docker exec container sh -c 'mkdir -p /var/results && echo measured > /var/results/run1'",
    );
    let name = unique("mounts");
    let out = run(
        &tb,
        "baleine-save",
        &["-n", &format!("{name}:plain"), source],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plain = &records(&out)[0];
    assert!(
        plain["not_saved"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "/var"),
        "{plain}"
    );
    let out = run(
        &tb,
        "baleine-save",
        &["-n", &format!("{name}:whole"), "--include-mounts", source],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let whole = &records(&out)[0];
    // The node's system mounts (/lib/modules, cgroups, dbus) are never copied, and said so.
    let not_saved = whole["not_saved"].as_array().unwrap();
    assert!(!not_saved.iter().any(|m| m == "/var"), "{whole}");
    assert!(not_saved.iter().any(|m| m == "/lib/modules"), "{whole}");
    assert!(
        whole["included_mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "/var"),
        "{whole}"
    );
    // On another node, from the registry, without the bind mount: the data is in the image.
    let image = whole["image"].as_str().unwrap();
    let read = |image: &str| {
        tb.ssh(
            target,
            &format!("docker run --rm --pull=always {image} cat /var/results/run1"),
        )
    };
    let out = read(image);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "measured\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let label = tb.ssh_ok(target, &format!("docker image inspect --format '{{{{index .Config.Labels \"org.r2lab.baleine.source-node\"}}}}' {image}"));
    assert_eq!(label.trim(), source, "the labels stay on the layer on top");
    // Without --include-mounts the file is not in the image.
    let out = read(plain["image"].as_str().unwrap());
    assert!(!out.status.success(), "the plain save holds /var's data");
}

#[test]
fn a_save_never_replaces_an_image_unless_forced_and_namespaces_keep_users_apart() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let source = tb.nodes[0].as_str();
    deploy_busybox(&tb, &[source]);
    let name = unique("twice");
    let name_tag = format!("{name}:v1");
    let first = run(&tb, "baleine-save", &["-n", &name_tag, source]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let first = records(&first)[0].clone();
    tb.ssh_ok(source, "docker exec container touch /root/changed");
    let again = run(&tb, "baleine-save", &["-n", &name_tag, source]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    let refused = &records(&again)[0];
    assert_eq!(refused["stage"], "exists", "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("--force"),
        "{refused}"
    );
    let (_, manifest) = tb.http_get(&format!("{}/v2/{name}/manifests/v1", tb.repo_url));
    assert!(!manifest.is_empty());
    let forced = run(&tb, "baleine-save", &["-n", &name_tag, "--force", source]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert_ne!(records(&forced)[0]["digest"], first["digest"]);
    // SAVE_NAMESPACE puts each user's saves under a prefix of their own.
    let out = tool(&tb, "baleine-save")
        .args(["-n", &name_tag, source])
        .env("BALEINE_SAVE_NAMESPACE", "team-%u")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    assert_eq!(
        records(&out)[0]["image"],
        format!("faraday.repo/team-{}/{name}:v1", user.trim())
    );
}

#[test]
fn saving_three_nodes_gives_three_tags() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let nodes: Vec<&str> = tb.nodes.iter().take(3).map(String::as_str).collect();
    deploy_busybox(&tb, &nodes);
    let name = unique("three");
    let name_tag = format!("{name}:v1");
    let mut args = vec!["-n", name_tag.as_str()];
    args.extend(&nodes);
    let out = run(&tb, "baleine-save", &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let saved = records(&out);
    for node in &nodes {
        assert_eq!(
            record_of(&saved, node)["image"],
            format!("faraday.repo/{name}:v1-{node}")
        );
    }
    let listed = lines_of(&run(&tb, "baleine-list", &[&name]));
    let tags: Vec<&str> = listed.iter().map(|l| l["tag"].as_str().unwrap()).collect();
    let expected: Vec<String> = nodes.iter().map(|n| format!("v1-{n}")).collect();
    assert_eq!(tags, expected);
}

#[test]
fn a_failed_push_keeps_the_image_on_the_node_and_push_only_finishes_the_job() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[0].as_str();
    deploy_busybox(&tb, &[node]);
    let name = unique("retry");
    let name_tag = format!("{name}:v1");
    let out = {
        let _repo = tb.stop("repo");
        run(&tb, "baleine-save", &["-n", &name_tag, node])
    };
    assert_eq!(out.status.code(), Some(1));
    let record = &records(&out)[0];
    assert_eq!(
        (record["ok"].as_bool(), record["stage"].as_str()),
        (Some(false), Some("push")),
        "{record}"
    );
    let local = record["local_image"].as_str().unwrap();
    assert_eq!(local, format!("faraday.repo/{name}:v1"));
    tb.ssh_ok(node, &format!("docker image inspect {local} >/dev/null"));

    let out = run(&tb, "baleine-save", &["--push-only", "-n", &name_tag, node]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(records(&out)[0]["image"], local);
}

/// A registry that is down for a moment costs a retry, not the save.
#[test]
fn a_push_is_tried_again_when_the_registry_comes_back() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[0].as_str();
    deploy_busybox(&tb, &[node]);
    let name_tag = format!("{}:v1", unique("comeback"));
    let repo = tb.stop("repo");
    let save = tool(&tb, "baleine-save")
        .args(["-n", &name_tag, node])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The node's script waits before its second try: the first one failed.
    common::wait_until("the first push failed and the node waits", 120, || {
        !common::processes("^sleep 2$").is_empty()
    });
    drop(repo);
    let out = save.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record = &records(&out)[0];
    let name = name_tag.split(':').next().unwrap();
    let (status, _) = tb.http_get(&format!("{}/v2/{name}/manifests/v1", tb.repo_url));
    assert_eq!(status, 200, "{record}");
    assert!(record["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn saving_a_node_without_a_container_fails_at_commit() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[1].as_str();
    tb.ssh_ok(node, "docker rm -f container >/dev/null 2>&1; true");
    let out = run(&tb, "baleine-save", &["-n", "nothing:v1", node]);
    assert_eq!(out.status.code(), Some(1));
    let record = &records(&out)[0];
    assert_eq!(record["stage"], "commit");
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("no container named container"),
        "{record}"
    );
}

#[test]
fn bad_names_are_refused_before_anything_runs() {
    let tb = Testbed::get();
    for bad in ["Bad Name", "faraday.repo/x:v1", "x:-v1", "a;reboot"] {
        let out = run(&tb, "baleine-save", &["-n", bad, &tb.nodes[0]]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn details_match_what_docker_inspect_says() {
    let tb = Testbed::get();
    let _nodes = tb.exclusive();
    let node = tb.nodes[2].as_str();
    deploy_busybox(&tb, &[node]);
    let name = unique("details");
    let out = run(&tb, "baleine-save", &["-n", &format!("{name}:v1"), node]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = lines_of(&run(&tb, "baleine-list", &["--details", &name]));
    assert_eq!(listed.len(), 1);
    let line = &listed[0];
    let image = format!("faraday.repo/{name}:v1");
    let inspect = tb.ssh_ok(
        node,
        &format!("docker pull -q {image} >/dev/null && docker image inspect --format '{{{{json .}}}}' {image}"),
    );
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        inspect["RepoDigests"][0],
        format!("faraday.repo/{name}@{}", line["digest"].as_str().unwrap())
    );
    assert_eq!(line["created"], inspect["Created"]);
    assert_eq!(line["architecture"], inspect["Architecture"]);
    assert_eq!(line["labels"], inspect["Config"]["Labels"]);
    assert_eq!(line["labels"]["org.r2lab.baleine.source-node"], node);
    assert!(line["size"].as_u64().unwrap() > 500_000, "{line}");
}

fn list_from(tb: &Testbed, registry: &ScratchRegistry, args: &[&str]) -> Command {
    let mut command = tool(tb, "baleine-list");
    command
        .args(args)
        .env("BALEINE_REGISTRY_URL", registry.host());
    command
}

#[test]
fn hundreds_of_repositories_and_tags_are_listed_completely_and_sorted() {
    let tb = Testbed::get();
    let registry = ScratchRegistry::start(None);
    let repositories: Vec<String> = (0..320).map(|i| format!("repo{i:03}")).collect();
    for repository in &repositories {
        registry.push_tiny_image(repository, "v1");
    }
    let tags: Vec<String> = (0..310).map(|i| format!("t{i:03}")).collect();
    for tag in &tags {
        registry.push_tiny_image("repo000", tag);
    }
    let out = list_from(&tb, &registry, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = records(&out);
    assert_eq!(
        lines.len(),
        319 + 311,
        "every repository and every tag of repo000"
    );
    let listed: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["repository"].as_str().unwrap().to_owned(),
                l["tag"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "output is not in a stable sorted order");
    assert!(listed.contains(&("repo319".into(), "v1".into())));
    assert!(listed.contains(&("repo000".into(), "t309".into())));
}

#[test]
fn an_htpasswd_registry_is_listed_with_credentials_and_refused_without() {
    let tb = Testbed::get();
    let registry = ScratchRegistry::start(Some(("alice", "s3cret")));
    registry.push_tiny_image("private/exp", "v1");
    let out = list_from(&tb, &registry, &[])
        .env("BALEINE_REGISTRY_USER", "alice")
        .env("BALEINE_REGISTRY_PASSWORD", "s3cret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(records(&out)[0]["repository"], "private/exp");

    let out = list_from(&tb, &registry, &[])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let message = stderr(&out);
    assert!(
        message.contains(&registry.url) && message.contains("401"),
        "{message}"
    );

    let out = list_from(&tb, &registry, &[])
        .env("BALEINE_REGISTRY_USER", "alice")
        .env("BALEINE_REGISTRY_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refused these credentials"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn registry_errors_name_the_url_and_the_cause() {
    let tb = Testbed::get();
    let registry = ScratchRegistry::start(None);
    registry.push_tiny_image("exists", "v1");
    let out = list_from(&tb, &registry, &["exists", "missing"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        records(&out).len(),
        1,
        "the lines that could be listed are still written"
    );
    assert!(
        stderr(&out).contains(&format!("{}/v2/missing/tags/list", registry.url)),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("404"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tool(&tb, "baleine-list")
        .env("BALEINE_REGISTRY_URL", format!("127.0.0.1:{closed}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach the registry"),
        "{}",
        stderr(&out)
    );

    let out = tool(&tb, "baleine-list")
        .arg("Not A Repo")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
