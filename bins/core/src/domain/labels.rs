//! The labels baleine writes on what it makes: one prefix, and what a deploy says of the container it runs.

use serde_json::Value;

/// The prefix of every baleine label (`org.r2lab.baleine.image`, ...).
pub const LABEL_PREFIX: &str = "org.r2lab.baleine";

/// What a deploy labels the container it runs with, besides its digest
/// (which only the node knows when it resolves it): the request as asked,
/// who asked, in which run, with which baleine. baleine-ps reports them
/// under the same names, so that its records, fed back to baleine-deploy,
/// ask for the same again.
pub const DEPLOY_KEYS: [&str; 7] = [
    "image", "digest", "options", "command", "user", "run", "version",
];

/// The key of the label `key` (`org.r2lab.baleine.key`).
pub fn label(key: &str) -> String {
    format!("{LABEL_PREFIX}.{key}")
}

/// A deploy's labels read back from a container's `Config.Labels`, as
/// record fields: options and command as lists (they were written as JSON),
/// the rest as text; `deployed_by` for the user and `baleine_version` for
/// the version, so they never read as a request's fields. A label that is
/// missing or does not parse is left out: a container baleine did not run,
/// or whose labels someone else wrote, says only what it can.
pub fn deploy_fields(labels: &Value) -> Vec<(&'static str, Value)> {
    let mut fields = Vec::new();
    for key in DEPLOY_KEYS {
        let Some(text) = labels[label(key)].as_str() else {
            continue;
        };
        let (name, value) = match key {
            "options" | "command" => match serde_json::from_str::<Vec<String>>(text) {
                Ok(words) => (key, Value::from(words)),
                Err(_) => continue,
            },
            "user" => ("deployed_by", Value::from(text)),
            "version" => ("baleine_version", Value::from(text)),
            "run" => ("run", Value::from(text)),
            "image" => ("image", Value::from(text)),
            _ => ("digest", Value::from(text)),
        };
        if !(name == "digest" && text.is_empty()) {
            fields.push((name, value));
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_s_labels_read_back_as_its_request() {
        let labels = serde_json::json!({
            "org.r2lab.baleine.image": "busybox",
            "org.r2lab.baleine.digest": "",
            "org.r2lab.baleine.options": "[\"-e\",\"A=1 2\"]",
            "org.r2lab.baleine.command": "not json",
            "org.r2lab.baleine.user": "alice",
            "other": "x",
        });
        let fields = deploy_fields(&labels);
        assert_eq!(
            fields,
            [
                ("image", Value::from("busybox")),
                ("options", serde_json::json!(["-e", "A=1 2"])),
                ("deployed_by", Value::from("alice")),
            ]
        );
        assert!(deploy_fields(&Value::Null).is_empty());
    }
}
