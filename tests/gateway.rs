//! The gateway's registry files (bins/gateway), read as a co-user of the shared gateway would: what they expose and what their processes may do.
//!
//! Hermetic: these are static checks of the shipped files. The testbed runs
//! the same registry files (tests/testbed.rs compares them), and checks
//! there that the compose file's privileges still let a registry bind port 80.

use std::collections::BTreeMap;

fn shipped(name: &str) -> String {
    let path = format!("{}/bins/gateway/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `key: value` lines of a registry file, by indented key path
/// (`storage.delete.enabled`), comments left out.
fn yaml_keys(text: &str) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        let body = line.split('#').next().unwrap_or("").trim_end();
        if body.trim().is_empty() {
            continue;
        }
        let indent = body.len() - body.trim_start().len();
        let Some((key, value)) = body.trim_start().split_once(':') else {
            continue;
        };
        path.retain(|(depth, _)| *depth < indent);
        path.push((indent, key.to_owned()));
        let full: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
        keys.insert(full.join("."), value.trim().to_owned());
    }
    keys
}

#[test]
fn every_registry_listens_on_one_named_address_and_publishes_no_secret() {
    for name in ["repo", "mirror", "repo-admin"] {
        let text = shipped(&format!("registry-{name}.yml"));
        let keys = yaml_keys(&text);
        let addr = keys.get("http.addr").expect("an http.addr");
        let host = addr.rsplit_once(':').map_or("", |(host, _)| host);
        let socket = keys.get("http.net").is_some_and(|net| net == "unix");
        assert!(
            socket || (!host.is_empty() && !["0.0.0.0", "[::]", "::"].contains(&host)),
            "{name} listens on every address: {addr:?}"
        );
        assert!(
            !keys.contains_key("http.secret"),
            "{name} publishes its http.secret"
        );
    }
}

#[test]
fn only_the_admin_group_s_socket_can_delete_and_the_mirror_has_its_own_storage() {
    let repo = yaml_keys(&shipped("registry-repo.yml"));
    let admin = yaml_keys(&shipped("registry-repo-admin.yml"));
    let mirror = yaml_keys(&shipped("registry-mirror.yml"));
    assert_eq!(repo["storage.delete.enabled"], "false");
    assert_eq!(mirror.get("storage.delete.enabled"), None);
    assert_eq!(admin["storage.delete.enabled"], "true");
    // A socket in the directory tmpfiles makes for the admin group alone,
    // where the unit may write and creates the socket 0770.
    assert_eq!(admin["http.net"], "unix");
    assert_eq!(admin["http.addr"], "/run/baleine-admin/registry.sock");
    assert!(shipped("baleine-tmpfiles.conf")
        .contains("d /run/baleine-admin 2750 baleine-registry baleine-admin -"));
    assert!(shipped("baleine-sysusers.conf").contains("g baleine-admin -"));
    let unit = shipped("baleine-registry-repo-admin.service");
    assert!(unit.contains("\nUMask=0007\n"), "{unit}");
    assert!(
        unit.contains("\nReadWritePaths=/run/baleine-admin\n"),
        "{unit}"
    );
    let root = "storage.filesystem.rootdirectory";
    assert_eq!(
        admin[root], repo[root],
        "the admin instance deletes the repo's images"
    );
    assert_ne!(mirror[root], repo[root], "a full cache must not stop saves");
}

#[test]
fn the_units_run_unprivileged_and_may_only_bind_low_ports() {
    for unit in [
        "baleine-registry-repo.service",
        "baleine-registry-repo-admin.service",
        "baleine-registry-mirror.service",
    ] {
        let text = shipped(unit);
        let set = |key: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(String::from)
                .collect()
        };
        assert_eq!(set("User"), ["baleine-registry"], "{unit}");
        assert_eq!(set("NoNewPrivileges"), ["yes"], "{unit}");
        assert_eq!(set("ProtectSystem"), ["strict"], "{unit}");
        assert_eq!(
            set("CapabilityBoundingSet"),
            ["CAP_NET_BIND_SERVICE"],
            "{unit}"
        );
        assert_eq!(
            set("AmbientCapabilities"),
            ["CAP_NET_BIND_SERVICE"],
            "{unit}"
        );
        let writable = set("ReadWritePaths");
        assert!(
            writable[0].starts_with("/var/lib/baleine/registry-"),
            "{unit}: {writable:?}"
        );
        // Its storage, and for the admin instance its socket's directory.
        let expected: &[&str] = match unit {
            "baleine-registry-repo-admin.service" => &["/run/baleine-admin"],
            _ => &[],
        };
        assert_eq!(&writable[1..], expected, "{unit}");
    }
}

#[test]
fn the_compose_file_drops_every_capability_but_binding_and_publishes_no_port() {
    let text = shipped("docker-compose.yml");
    let keys = yaml_keys(&text);
    assert_eq!(keys["x-registry.read_only"], "true");
    assert_eq!(keys["x-registry.cap_drop"], "[ALL]");
    assert_eq!(keys["x-registry.cap_add"], "[NET_BIND_SERVICE]");
    assert_eq!(
        keys["x-registry.security_opt"],
        "[\"no-new-privileges:true\"]"
    );
    for service in ["repo", "repo-admin", "mirror"] {
        // Host networking: each instance binds what its file names; a
        // `ports:` mapping would publish it on every interface.
        assert_eq!(keys[&format!("services.{service}.network_mode")], "host");
        assert!(!keys.contains_key(&format!("services.{service}.ports")));
    }
}
