//! baleine-list's job: every image tag in the registry, one JSON line each, complete and in a stable order.
//!
//! Not a fleet `Job` (nor are rmi and build, for their own reasons): it talks to one registry
//! over HTTP, not to nodes over ssh, and a repository gives any number of
//! lines (one per tag), in sorted order, so "one record per node" has
//! nothing to count. It shares the framework's pool (`fanout::in_order`),
//! stdout writer (`output::write_line`) and exit statuses (`exit::status`).

use crate::domain::config::{self, Config};
use crate::domain::record::Record;
use crate::domain::reference::{target_image, validate_repository_name};
use crate::framework::cli::Tool;
use crate::framework::output::{printable, write_line, Tally};
use crate::framework::{exit, fanout, UsageError};
use crate::remote::registry::{Manifest, Registry, RegistryError};
use argh::{ArgsInfo, FromArgs};
use serde_json::{json, Value};
use std::io;
use std::process::ExitCode;

/// List every image tag in the registry at REGISTRY_PROTOCOL + REGISTRY_URL,
/// one JSON line per tag, sorted: {"repository","tag","image"}, where
/// "image" is the reference to give baleine-deploy -i.
#[derive(FromArgs, ArgsInfo)]
#[argh(
    example = "baleine-list",
    example = "baleine-list myexp --details | jq -r 'select(.labels[\"org.r2lab.baleine.source-node\"]) | .image'",
    note = "Credentials: REGISTRY_USER and REGISTRY_PASSWORD, else those of docker login \
            (~/.docker/config.json). Basic and Bearer-token registries are supported.",
    error_code(
        1,
        "the registry could not be read completely (stderr names the URL and why)"
    ),
    error_code(2, "usage or configuration error"),
    error_code(130, "interrupted")
)]
pub struct ListArgs {
    /// also show digest, size (compressed, config and layers), created,
    /// architecture and labels of each image
    #[argh(switch, short = 'd')]
    pub details: bool,
    /// how many repositories to read at once (default: 8)
    #[argh(option, short = 'j')]
    pub parallel: Option<usize>,
    /// repositories to list (default: the whole catalog)
    #[argh(positional)]
    pub repositories: Vec<String>,
}

impl Tool for ListArgs {
    const NAME: &'static str = "baleine-list";

    fn run(self, _: Vec<String>) -> Result<ExitCode, UsageError> {
        for repository in &self.repositories {
            validate_repository_name(repository).map_err(|e| UsageError(e.to_string()))?;
        }
        let config = config::load().map_err(|e| UsageError(e.to_string()))?;
        let parallel = self.parallel.unwrap_or_else(|| {
            crate::framework::args::stated_default::<ListArgs>("--parallel") as usize
        });
        Ok(exit::unless_interrupted(move || {
            run(&config, &self.repositories, self.details, parallel)
        }))
    }
}

/// One tag's line: repository, tag, the reference nodes deploy it by, and
/// with `--details` what the registry says about the image.
pub fn tag_line(config: &Config, repository: &str, tag: &str) -> Record {
    let image = target_image(&config.save_url, config.save_port, repository, tag);
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
    let mut tally = Tally::default();
    let mut repositories = if repositories.is_empty() {
        match registry.catalog() {
            Ok(all) => all,
            Err(e) => {
                eprintln!("baleine-list: {}", printable(&e.to_string()));
                tally.failed += 1;
                return exit::status(&tally);
            }
        }
    } else {
        repositories.to_vec()
    };
    repositories.sort();
    repositories.dedup();
    let mut stdout = io::stdout().lock();
    let work = |repository: &String| list_repository(&registry, config, repository, details);
    fanout::in_order(parallel, &repositories, &work, |result| {
        let error = match result {
            Ok(Ok(lines)) => {
                return lines
                    .iter()
                    .all(|line| write_line(&mut stdout, &line.to_json_line()))
            }
            Ok(Err(e)) => e.to_string(),
            Err(panicked) => panicked.error,
        };
        tally.failed += 1;
        eprintln!("baleine-list: {}", printable(&error));
        true
    });
    exit::status(&tally)
}

fn list_repository(
    registry: &Registry,
    config: &Config,
    repository: &str,
    details: bool,
) -> Result<Vec<Record>, RegistryError> {
    if crate::domain::stop::stopping() {
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
    fn the_default_is_the_one_the_help_states() {
        assert_eq!(
            crate::framework::args::stated_default::<ListArgs>("--parallel"),
            8
        );
    }

    #[test]
    fn lines_name_the_image_as_nodes_pull_it() {
        let mut config = crate::domain::config::load_from(&[], &|_| None).unwrap();
        assert_eq!(
            tag_line(&config, "exp", "v1").to_json_line(),
            r#"{"repository":"exp","tag":"v1","image":"faraday.repo/exp:v1"}"#
        );
        config.save_port = Some(5000);
        let line = tag_line(&config, "a/b", "t");
        assert_eq!(line.get("image").unwrap(), "faraday.repo:5000/a/b:t");
    }
}
