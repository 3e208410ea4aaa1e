//! The local R2Lab copy itself: the world every other test relies on behaves like R2Lab.

mod common;

use common::{unique, Testbed};
use std::collections::BTreeSet;
use std::process::Command;
use std::thread;

/// Runs `f` on every node at once, as users will, and returns results in node order.
fn on_every_node<T: Send>(tb: &Testbed, f: impl Fn(&str) -> T + Sync) -> Vec<T> {
    thread::scope(|s| {
        let handles: Vec<_> = tb.nodes.iter().map(|n| s.spawn(|| f(n))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("node thread"))
            .collect()
    })
}

#[test]
fn every_node_has_its_own_docker_engine_for_root_and_for_container() {
    let tb = Testbed::get();
    let ids = on_every_node(&tb, |node| {
        tb.ssh_ok(node, "docker info --format '{{.ID}}'")
    });
    let distinct: BTreeSet<_> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        tb.nodes.len(),
        "engines are shared between nodes: {ids:?}"
    );
    // The container user's shell is rdsh: its sessions land in the managed
    // container of the node's own engine.
    tb.install_rdsh(env!("CARGO_BIN_EXE_rdsh"));
    let containers = on_every_node(&tb, |node| {
        tb.ssh_ok(
            node,
            "docker rm -f container >/dev/null 2>&1; docker run -d --name container busybox sleep 1d",
        )
    });
    for (node, id) in tb.nodes.iter().zip(&containers) {
        let out = tb.ssh_as("container", node, "hostname");
        assert!(
            out.status.success(),
            "container@{node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            &id.trim()[..12],
            "container@{node} lands elsewhere than in {node}'s container"
        );
    }
    on_every_node(&tb, |node| tb.ssh_ok(node, "docker rm -f container"));
}

#[test]
fn docker_pull_on_every_node_goes_through_the_mirror() {
    let tb = Testbed::get();
    let digests = on_every_node(&tb, |node| {
        tb.ssh_ok(node, "docker pull -q busybox >/dev/null && docker image inspect --format '{{index .RepoDigests 0}}' busybox")
    });
    assert!(
        digests.iter().all(|d| d == &digests[0]),
        "nodes pulled different bits: {digests:?}"
    );
    assert!(
        digests[0].starts_with("busybox@sha256:"),
        "unexpected digest {}",
        digests[0]
    );
    let (code, catalog) = tb.http_get(&format!("{}/v2/_catalog", tb.mirror_url));
    assert_eq!(code, 200);
    assert!(
        catalog.contains("\"library/busybox\""),
        "the mirror did not cache busybox: {catalog}"
    );
}

#[test]
fn the_80mb_image_is_pulled_through_the_mirror() {
    let tb = Testbed::get();
    let node = tb.nodes.last().unwrap();
    let size = tb.ssh_ok(node, "docker pull -q bigbox >/dev/null && docker image inspect --format '{{.Size}} {{len .RootFS.Layers}}' bigbox");
    let mut words = size.split_whitespace().map(|w| w.parse::<u64>().unwrap());
    let (bytes, layers) = (words.next().unwrap(), words.next().unwrap());
    assert!(
        (70_000_000..100_000_000).contains(&bytes),
        "bigbox is {bytes} bytes"
    );
    assert!(layers >= 4, "bigbox has {layers} layers");
}

#[test]
fn a_node_pushes_to_the_repo_registry_as_faraday_repo() {
    let tb = Testbed::get();
    let name = unique("testbed-push");
    tb.ssh_ok(
        &tb.nodes[0],
        &format!("docker pull -q busybox >/dev/null && docker tag busybox faraday.repo/{name}:v1 && docker push -q faraday.repo/{name}:v1 && docker rmi faraday.repo/{name}:v1"),
    );
    let (code, catalog) = tb.http_get(&format!("{}/v2/_catalog?n=1000", tb.repo_url));
    assert_eq!(code, 200);
    assert!(
        catalog.contains(&format!("\"{name}\"")),
        "{name} missing from the repo catalog: {catalog}"
    );
    let (code, tags) = tb.http_get(&format!("{}/v2/{name}/tags/list", tb.repo_url));
    assert_eq!((code, tags.contains("\"v1\"")), (200, true), "tags: {tags}");
}

#[test]
fn privileged_containers_run_with_r2lab_default_options() {
    let tb = Testbed::get();
    let out = tb.ssh_ok(
        &tb.nodes[0],
        "docker run --rm -v /home/container/container_fs:/var -v /lib/modules:/lib/modules \
         -v /var/run/dbus:/var/run/dbus -v /sys/fs/cgroup:/sys/fs/cgroup --network=host \
         --privileged --cap-add=ALL busybox sh -c 'echo ok > /var/probe && cat /var/probe'",
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn each_node_and_its_host_network_containers_are_named_like_the_node() {
    let tb = Testbed::get();
    let names = on_every_node(&tb, |node| {
        tb.ssh_ok(
            node,
            "echo $(hostname) $(docker run --rm --network=host busybox hostname)",
        )
    });
    for (node, names) in tb.nodes.iter().zip(names) {
        assert_eq!(names.trim(), format!("{node} {node}"));
    }
}

#[test]
fn rhubarbe_names_exactly_the_nodes_that_answer_ssh() {
    let tb = Testbed::get();
    let n = tb.nodes.len();
    let out = tb.rhubarbe(&["nodes", &format!("1-{n}")]);
    assert!(
        out.status.success(),
        "rhubarbe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let named: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(named, tb.nodes);
    // Quiet, as a newcomer's first demo should be; its real errors still show.
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "rhubarbe's warnings"
    );
    let bad = tb.rhubarbe(&["nodes", "1-x"]);
    let said = String::from_utf8_lossy(&bad.stdout) + String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("Misformed node range"), "{said}");
    let all = tb.rhubarbe(&["nodes", "-a"]);
    assert_eq!(
        String::from_utf8_lossy(&all.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        named
    );
    let answers = on_every_node(&tb, |node| tb.ssh(node, "true").status.success());
    assert!(
        answers.iter().all(|ok| *ok),
        "nodes not answering ssh: {answers:?}"
    );
    if n < 37 {
        let beyond = format!("fit{:02}", n + 1);
        assert!(
            !tb.ssh(&beyond, "true").status.success(),
            "{beyond} answers but is not in the testbed"
        );
    }
}

/// The testbed's admin group (tests/testbed/testbed): a gid no account has.
const ADMIN_GID: &str = "64123";

/// `command` as user 65534, a member of the admin group or not.
fn as_another_user(member: bool, command: &mut Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--reuid=65534", "--regid=65534"]);
    match member {
        true => wrapped.arg(format!("--groups={ADMIN_GID}")),
        false => wrapped.arg("--clear-groups"),
    };
    wrapped.arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

#[test]
fn only_the_admin_group_can_delete_through_its_socket() {
    let tb = Testbed::get();
    let admin = std::fs::read_to_string(tb.dir.join("registries/repo-admin/url"))
        .unwrap()
        .trim()
        .to_owned();
    let socket = admin
        .strip_prefix("unix:")
        .expect("a unix socket")
        .to_owned();
    let name = unique("deleted");
    // An image in the repo, pushed from a node through the network-facing instance.
    tb.ssh_ok(
        &tb.nodes[0],
        &format!(
            "docker pull -q busybox >/dev/null && docker tag busybox faraday.repo/{name}:v1 && \
             docker push -q faraday.repo/{name}:v1 >/dev/null"
        ),
    );
    let head = |tag: &str| -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sI", "-H"])
            .arg("Accept: application/vnd.docker.distribution.manifest.v2+json")
            .arg(format!("{}/v2/{name}/manifests/{tag}", tb.repo_url))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let digest = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("docker-content-digest:")
                    .map(|d| d.trim().to_owned())
            })
            .unwrap_or_default();
        (status, digest)
    };
    let (status, digest) = head("v1");
    assert_eq!(status, 200, "the pushed image is not served");
    // The instance the nodes and the network reach refuses (405 Unsupported).
    let delete = format!("{}/v2/{name}/manifests/{digest}", tb.repo_url);
    assert_eq!(tb.http_delete(&delete), 405);
    assert_eq!(head("v1").0, 200);
    // Another account of the gateway, outside the group: cannot even
    // connect, with curl or with baleine-rmi, and the image stays.
    let state = std::env::temp_dir().join(unique("rmi-state"));
    std::fs::create_dir_all(&state).unwrap();
    nix::unistd::chown(&state, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let rmi = |member: bool, tag: &str| {
        let mut command = common::tool(&tb, "baleine-rmi");
        command
            .args(["-y", &format!("{name}:{tag}")])
            .env("XDG_STATE_HOME", &state)
            .env("HOME", &state);
        as_another_user(member, &mut command).output().unwrap()
    };
    let curl_delete = |member: bool| {
        let mut command = Command::new("curl");
        command
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "DELETE",
                "--unix-socket",
            ])
            .arg(&socket)
            .arg(format!("http://localhost/v2/{name}/manifests/{digest}"));
        let out = as_another_user(member, &mut command).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl_delete(false), "000");
    let out = rmi(false, "v1");
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let record = &common::records(&out)[0];
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{record}"
    );
    assert_eq!(head("v1").0, 200, "an outsider deleted the image");
    // A member of the group deletes, through baleine-rmi.
    let out = rmi(true, "v1");
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(common::records(&out)[0]["deleted"], true);
    assert_eq!(head("v1").0, 404);
    let _ = std::fs::remove_dir_all(state);
}

#[test]
fn the_gateway_registry_files_are_what_the_testbed_runs() {
    let tb = Testbed::get();
    for name in ["repo", "mirror", "repo-admin"] {
        let shipped = std::fs::read_to_string(format!(
            "{}/bins/gateway/registry-{name}.yml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let running =
            std::fs::read_to_string(tb.dir.join(format!("registries/{name}/config.yml"))).unwrap();
        let substituted = ["rootdirectory:", "addr:", "remoteurl:"];
        let kept = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !substituted.iter().any(|s| l.trim_start().starts_with(s)))
                .map(String::from)
                .collect()
        };
        assert_eq!(
            kept(&running),
            kept(&shipped),
            "the testbed's {name} registry differs from bins/gateway beyond addresses"
        );
    }
}

/// The compose file's privileges (user, capabilities, no new privileges,
/// read-only root) still let a process bind a port below 1024 on the host
/// network, as the registries must (80, 81): run with exactly those options
/// on a node's engine, busybox's httpd binds a low port.
#[test]
fn the_compose_file_s_privileges_let_a_registry_bind_a_low_port() {
    let tb = Testbed::get();
    let compose = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bins/gateway/docker-compose.yml"
    ))
    .unwrap();
    let value = |key: &str| -> String {
        compose
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} in docker-compose.yml"))
            .trim()
            .trim_matches(|c| c == '"' || c == '[' || c == ']')
            .to_owned()
    };
    let list = |key: &str| -> Vec<String> {
        value(key)
            .split(',')
            .map(|w| w.trim().trim_matches('"').to_owned())
            .collect()
    };
    let mut options = vec![
        "--network=host".to_owned(),
        format!("--user={}", value("user")),
    ];
    if value("read_only") == "true" {
        options.push("--read-only".into());
    }
    options.extend(list("cap_drop").iter().map(|c| format!("--cap-drop={c}")));
    options.extend(list("cap_add").iter().map(|c| format!("--cap-add={c}")));
    options.extend(
        list("security_opt")
            .iter()
            .map(|o| format!("--security-opt={o}")),
    );
    // httpd binds, then goes to the background: exit 0 means it could bind.
    let out = tb.ssh(
        &tb.nodes[0],
        &format!(
            "docker run --rm {} busybox httpd -p 127.0.9.9:82",
            options.join(" ")
        ),
    );
    assert!(
        out.status.success(),
        "with {options:?}: {}",
        common::stderr(&out)
    );
}
