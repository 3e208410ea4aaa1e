//! baleine-list's job: every image tag in the registry, one JSON line each, complete and in a stable order.

use crate::config::Config;
use crate::record::Record;
use crate::registry::{Manifest, Registry, RegistryError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

/// One tag's line: repository, tag, the reference nodes deploy it by, and
/// with `--details` what the registry says about the image.
pub fn tag_line(config: &Config, repository: &str, tag: &str) -> Record {
    let image = crate::save::target_image(&config.save_url, config.save_port, repository, tag);
    Record::line()
        .with("repository", repository)
        .with("tag", tag)
        .with("image", image)
}

/// Adds digest, size, created, architecture and labels to `line`.
pub fn add_details(
    registry: &Registry,
    repository: &str,
    tag: &str,
    line: &mut Record,
) -> Result<(), RegistryError> {
    let top = registry.manifest(repository, tag)?;
    let image = if top.is_index() {
        platform_manifest(registry, repository, &top)?
    } else {
        top.clone()
    };
    let config_digest = image.body["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let size = image.body["config"]["size"].as_u64().unwrap_or(0)
        + image.body["layers"].as_array().map_or(0, |layers| {
            layers.iter().filter_map(|l| l["size"].as_u64()).sum()
        });
    let config = registry.blob_json(repository, &config_digest)?;
    line.set("digest", top.digest);
    line.set("size", size);
    line.set("created", config["created"].clone());
    line.set("architecture", config["architecture"].clone());
    line.set(
        "labels",
        match &config["config"]["Labels"] {
            Value::Null => json!({}),
            labels => labels.clone(),
        },
    );
    Ok(())
}

/// In an index, the linux/amd64 image (our nodes), else the first one.
fn platform_manifest(
    registry: &Registry,
    repository: &str,
    index: &Manifest,
) -> Result<Manifest, RegistryError> {
    let entries = index.body["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let chosen = entries
        .iter()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")
        .or_else(|| entries.first())
        .and_then(|m| m["digest"].as_str())
        .ok_or_else(|| RegistryError {
            url: format!("{}/v2/{repository}/manifests", registry.base()),
            cause: "an index with no manifests".into(),
            not_found: false,
        })?;
    registry.manifest(repository, chosen)
}

/// Lists `repositories` (all of the catalog when empty), fetching
/// repositories in parallel and printing them sorted. Errors go to stderr
/// naming the URL; the lines already written stay valid; exit 1 if any.
pub fn run(config: &Config, repositories: &[String], details: bool, parallel: usize) -> ExitCode {
    let registry = Registry::from_config(config);
    let mut repositories = if repositories.is_empty() {
        match registry.catalog() {
            Ok(all) => all,
            Err(e) => {
                eprintln!("baleine-list: {e}");
                return ExitCode::from(crate::exit::SOME_NODE_FAILED);
            }
        }
    } else {
        repositories.to_vec()
    };
    repositories.sort();
    repositories.dedup();
    let (jobs_tx, jobs) = crossbeam::channel::unbounded();
    for job in repositories.iter().enumerate() {
        let _ = jobs_tx.send(job);
    }
    drop(jobs_tx);
    let (done_tx, done) = crossbeam::channel::unbounded();
    let mut failed = false;
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, repositories.len().max(1)) {
            let (jobs, done_tx, registry) = (jobs.clone(), done_tx.clone(), &registry);
            scope.spawn(move || {
                for (index, repository) in jobs {
                    let _ = done_tx.send((
                        index,
                        list_repository(registry, config, repository, details),
                    ));
                }
            });
        }
        drop(done_tx);
        // Print in sorted order as soon as each repository's turn comes.
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        let mut stdout = io::stdout().lock();
        for (index, result) in done {
            waiting.insert(index, result);
            while let Some(result) = waiting.remove(&next) {
                next += 1;
                match result {
                    Ok(lines) => {
                        for line in lines {
                            if writeln!(stdout, "{}", line.to_json_line())
                                .and_then(|()| stdout.flush())
                                .is_err()
                            {
                                // Nobody reads any more (| head): end quietly.
                                crate::stop::close_stdout();
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("baleine-list: {e}");
                    }
                }
            }
        }
    });
    if crate::stop::interrupted() {
        ExitCode::from(crate::exit::INTERRUPTED)
    } else if failed {
        ExitCode::from(crate::exit::SOME_NODE_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

fn list_repository(
    registry: &Registry,
    config: &Config,
    repository: &str,
    details: bool,
) -> Result<Vec<Record>, RegistryError> {
    if crate::stop::stopping() {
        return Ok(Vec::new());
    }
    let mut tags = registry.tags(repository)?;
    tags.sort();
    tags.into_iter()
        .map(|tag| {
            let mut line = tag_line(config, repository, &tag);
            if details {
                add_details(registry, repository, &tag, &mut line)?;
            }
            Ok(line)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_image_as_nodes_pull_it() {
        let mut config = crate::config::load_from(&[], &|_| None).unwrap();
        assert_eq!(
            tag_line(&config, "exp", "v1").to_json_line(),
            r#"{"repository":"exp","tag":"v1","image":"faraday.repo/exp:v1"}"#
        );
        config.save_port = Some(5000);
        let line = tag_line(&config, "a/b", "t");
        assert_eq!(line.get("image").unwrap(), "faraday.repo:5000/a/b:t");
    }
}
