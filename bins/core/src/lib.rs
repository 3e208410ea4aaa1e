//! baleine's shared core: everything the small `baleine-*` tools and `rdsh` have in common.
//!
//! The layers, from the bottom up (a layer uses only those below it):
//! - [`domain`]: what the tools talk about: node names and specs, image
//!   references, the configuration, the JSON record and its stages.
//! - [`remote`]: how we reach the outside: the remote shell script builder,
//!   the ssh transport (a node name becomes an ssh argv in
//!   `remote::ssh::argv`) and the registry client.
//! - [`framework`]: what every tool shares: argument parsing and exit codes,
//!   the node input, the [`framework::fleet::Fleet`] that runs a
//!   [`framework::fleet::Job`] on every node, the fan-out, and the one writer
//!   of stdout (`framework::output`, where every record is written).
//! - [`jobs`]: one module per tool: its arguments, its remote script and how
//!   the script's result becomes the node's record. No job uses another.
//! - [`docs`]: man pages and completions, generated from the jobs' arguments.
//! - [`front`]: `baleine`, the front door that runs the tools and reads
//!   baleine 0.8's command lines.

pub mod docs;
pub mod domain;
pub mod framework;
pub mod front;
pub mod jobs;
pub mod remote;

pub use framework::UsageError;

/// The layers hold in the code itself: drawn from each module's `use`s.
#[cfg(test)]
mod layers {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Every module of this crate (`remote::ssh::capture`) and the modules
    /// its code, tests left out, names (`crate::…`, `super::…`, a child's
    /// `pub use`), each resolved to the longest module it starts with.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                match path.is_dir() {
                    true => dirs.push(path),
                    false if path.extension().is_some_and(|e| e == "rs") => files.push(path),
                    false => {}
                }
            }
        }
        let module_of = |path: &Path| {
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            parts.join("::")
        };
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
        let resolve = |path: &str| {
            let parts: Vec<&str> = path.split("::").collect();
            (1..=parts.len())
                .rev()
                .map(|n| parts[..n].join("::"))
                .find(|candidate| modules.contains(candidate))
        };
        let mut graph = BTreeMap::new();
        for file in &files {
            let module = module_of(file);
            let text = std::fs::read_to_string(file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let parent = module.rsplit_once("::").map_or("", |(p, _)| p).to_owned();
            let mut named = BTreeSet::new();
            for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
                let words = line.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'));
                for word in words {
                    let path = if let Some(rest) = word.strip_prefix("crate::") {
                        rest.to_owned()
                    } else if let Some(rest) = word.strip_prefix("super::") {
                        format!("{parent}::{rest}")
                    } else if line.starts_with("pub use ") && word.contains("::") {
                        format!("{module}::{word}")
                    } else {
                        continue;
                    };
                    if let Some(target) = resolve(path.trim_start_matches("::")) {
                        if target != module && !module.starts_with(&format!("{target}::")) {
                            named.insert(target);
                        }
                    }
                }
            }
            graph.insert(module, named);
        }
        graph
    }

    #[test]
    fn no_module_imports_one_that_imports_it_back() {
        let graph = imports();
        assert!(graph.contains_key("remote::protocol"), "{graph:?}");
        // Depth-first from every module: a path back to it is a circle.
        for start in graph.keys() {
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((at, path)) = stack.pop() {
                for next in graph.get(&at).into_iter().flatten() {
                    assert!(
                        next != start,
                        "an import circle: {} -> {next}",
                        path.join(" -> ")
                    );
                    if seen.insert(next.clone()) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
    }

    #[test]
    fn each_layer_uses_only_those_below_it_and_no_job_another() {
        let order = ["domain", "remote", "framework", "jobs", "docs", "front"];
        let layer = |module: &str| {
            let top = module.split("::").next().unwrap_or_default();
            order.iter().position(|l| *l == top)
        };
        for (module, named) in imports() {
            for target in named {
                if let (Some(from), Some(to)) = (layer(&module), layer(&target)) {
                    assert!(
                        to < from || (to == from && !(from == 3 && module != target)),
                        "{module} uses {target}"
                    );
                }
            }
        }
    }
}
