//! baleine-list's job: every image tag in the registry, one JSON line each, complete and in a stable order.
//!
//! Not a fleet `Job` (nor are rmi and build, for their own reasons): it talks to one registry
//! over HTTP, not to nodes over ssh, and a repository gives any number of
//! lines (one per tag), in sorted order. It shares the framework's pool
//! (`fanout::in_order`) and its one pipeline: the writer (stdout, the state
//! file, the terminal), and the exit status from what was written. Each tag
//! is a listing line on stdout; a repository that cannot be read is said on
//! stderr, and kept as a failed record in the state file.

use crate::domain::config::{self, Config};
use crate::domain::record::{Failure, Record, Stage};
use crate::domain::reference::{target_image, validate_repository_name};
use crate::framework::cli::Tool;
use crate::framework::output::{printable, Run, Subject, Writer};
use crate::framework::table::{self, Cell, Column, Table};
use crate::framework::{exit, fanout, UsageError};
use crate::remote::registry::{Manifest, Registry, RegistryError};
use argh::{ArgsInfo, FromArgs};
use serde_json::{json, Value};
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
    error_code(130, "interrupted"),
    error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
)]
pub struct ListArgs {
    /// also show digest, size (compressed, config and layers), created,
    /// architecture and labels of each image
    #[argh(switch, short = 'd')]
    pub details: bool,
    /// how many repositories to read at once (default: 8)
    #[argh(option, arg_name = "N", short = 'j')]
    pub parallel: Option<usize>,
    /// no progress line and no summary on a terminal (the records are the same)
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// JSON lines on stdout even at a terminal (this tool shows no other view)
    #[argh(switch)]
    pub json: bool,
    /// repositories to list (default: the whole catalog)
    #[argh(positional)]
    pub repositories: Vec<String>,
}

/// How many repositories are read at once by default (`-j`'s help quotes it).
pub const DEFAULT_PARALLEL: usize = 8;

impl Tool for ListArgs {
    const NAME: &'static str = "baleine-list";

    fn run(self, _: Vec<std::ffi::OsString>) -> Result<ExitCode, UsageError> {
        for repository in &self.repositories {
            validate_repository_name(repository).map_err(|e| UsageError(e.to_string()))?;
        }
        let config = config::load().map_err(|e| UsageError(e.to_string()))?;
        let parallel = self.parallel.unwrap_or(DEFAULT_PARALLEL);
        Ok(exit::unless_interrupted(move || {
            run(
                &config,
                &self.repositories,
                self.details,
                parallel,
                Shown {
                    quiet: self.quiet,
                    json: self.json,
                },
            )
        }))
    }
}

/// One tag's line: repository, tag, the reference nodes deploy it by, and
/// with `--details` what the registry says about the image.
pub fn tag_line(config: &Config, repository: &str, tag: &str) -> Record {
    let image = target_image(&config.save_url, config.save_port, repository, tag);
    Record::listing()
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

/// How the lines are shown: `-q`, `--json`.
pub struct Shown {
    pub quiet: bool,
    pub json: bool,
}

/// A listing on a terminal: a row per tag, by name.
const COLUMNS: &[Column] = &[
    table::IMAGE,
    table::DIGEST,
    Column {
        header: "SIZE",
        cell: Cell::Bytes("size"),
    },
    Column {
        header: "CREATED",
        cell: Cell::Text("created"),
    },
    Column {
        header: "ARCH",
        cell: Cell::Text("architecture"),
    },
];

/// Lists `repositories` (all of the catalog when empty), fetching
/// repositories in parallel and printing them sorted. Errors go to stderr
/// naming the URL; the lines already written stay valid; exit 1 if any.
pub fn run(
    config: &Config,
    repositories: &[String],
    details: bool,
    parallel: usize,
    shown: Shown,
) -> ExitCode {
    let registry = Registry::from_config(config);
    let writer = Writer::without_stages(Run {
        action: "list",
        total: None,
        view: Table::boxed(COLUMNS).filter(|_| !shown.json),
        subject: REPOSITORIES,
        // Its lines come as fast as the registry answers.
        progress: false,
        quiet: shown.quiet,
        failures_on_stdout: false,
    });
    let mut repositories = if repositories.is_empty() {
        match registry.catalog() {
            Ok(all) => all,
            Err(e) => {
                let _ = writer.records.send(unreadable(None, e.to_string()));
                return exit::status(&writer.finish());
            }
        }
    } else {
        repositories.to_vec()
    };
    repositories.sort();
    repositories.dedup();
    let work = |repository: &String| list_repository(&registry, config, repository, details);
    // Results come in the order of `repositories`.
    let mut next = repositories.iter();
    fanout::in_order(parallel, &repositories, &work, |result| {
        let repository = next.next().map(String::as_str);
        let records = match result {
            Ok(Ok(lines)) => lines,
            Ok(Err(e)) => vec![unreadable(repository, e.to_string())],
            Err(panicked) => vec![unreadable(repository, panicked.error)],
        };
        records
            .into_iter()
            .all(|record| writer.records.send(record).is_ok())
            && !crate::domain::stop::stdout_closed()
    });
    exit::status(&writer.finish())
}

/// The failed records of a listing name the repository (null: the catalog).
const REPOSITORIES: Subject = Subject {
    noun: "repository",
    field: Some("repository"),
    retry: None,
};

/// The failed record of a repository (or the catalog) that could not be
/// read: said on stderr, where a listing's reader looks for errors, and
/// kept in the state file (stdout has only the tags).
fn unreadable(repository: Option<&str>, error: String) -> Record {
    eprintln!("baleine-list: {}", printable(&error));
    Record::failure(None, "list", &Failure::new(Stage::Inspect, error))
        .with("repository", repository)
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
