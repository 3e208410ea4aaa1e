//! `baleine-rmi`: delete tags from the repo registry, through its admin instance (the baleine-admin group's socket), one record per tag.
//!
//! Not a fleet job: it works on tags, not nodes. A registry deletes a
//! manifest by digest, which takes every tag naming it along: a digest that
//! another tag still names is reported and left alone, never silently
//! broken. The space comes back when the registry's garbage collection runs.

use crate::domain::config::{self, Config};
use crate::domain::record::{Failure, Fields, Record, Stage};
use crate::domain::reference::{target_image, RepoName};
use crate::domain::stop;
use crate::framework::cli::Tool;
use crate::framework::output::{Run, Subject, Writer};
use crate::framework::table::{self, Cell, Column, Table};
use crate::framework::{confirm, exit, UsageError};
use crate::remote::registry::Registry;
use argh::{ArgsInfo, FromArgs};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

#[derive(FromArgs, ArgsInfo)]
/// Delete tags from the repo registry: one JSON record per tag. A tag whose
/// image another tag still names is reported and kept.
#[argh(
    example = "baleine-rmi myexp:v1 myexp:v2",
    example = "baleine-list myexp | jq -c 'select(.tag | startswith(\"test-\"))' | baleine-rmi -y",
    note = "Tags are NAME:TAG, or the image as baleine-list prints it (faraday.repo/NAME:TAG); \
            with SAVE_NAMESPACE set, a NAME given as an argument is taken under it, as \
            baleine-save and baleine-build store it (a name already under it stays as given); \
            without arguments, stdin gives them one a line, or as baleine-list's JSON lines. \
            Deletes go through REGISTRY_ADMIN_URL, the registry's second instance, on a unix socket \
            that only root and the baleine-admin group of the gateway can reach (bins/gateway): \
            other users, nodes and the network can never delete. \
            A registry deletes an image, not a tag: when another tag names the same image, the \
            tag is reported (stage \"referenced\") and nothing is deleted; give both tags to delete \
            both. The disk space comes back when the registry's garbage collection runs \
            (baleine-registry-gc.timer, weekly, on the gateway), which removes the layers no image uses any more.",
    error_code(1, "some tag could not be deleted (its record says why)"),
    error_code(
        2,
        "usage or configuration error, a bad input line, or no terminal to confirm on; nothing was deleted"
    ),
    error_code(130, "interrupted"),
    error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
)]
pub struct RmiArgs {
    /// do not ask for confirmation
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// say what would be deleted (and what refused), delete nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// no progress line and no summary on a terminal (the records are the same)
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// JSON lines on stdout even at a terminal (this tool shows no other view)
    #[argh(switch)]
    pub json: bool,
    /// tags to delete: NAME:TAG or SAVE_URL/NAME:TAG (default: stdin)
    #[argh(positional)]
    pub tags: Vec<String>,
}

/// A deletion on a terminal: a row per tag, by name.
const COLUMNS: &[Column] = &[
    table::IMAGE,
    table::DIGEST,
    Column {
        header: "DELETED",
        cell: Cell::With(|record| match record.get("dry_run") {
            Some(_) => "would be".into(),
            None => "yes".into(),
        }),
    },
    Column {
        header: "ALONG",
        cell: Cell::Text("along"),
    },
];

/// The most tags one rmi deletes from stdin: a runaway pipe is no plan.
const MAX_TAGS: usize = 100_000;

/// The most bytes of stdin read for them (baleine-list's lines are short).
const MAX_STDIN_BYTES: u64 = 64 << 20;

impl Tool for RmiArgs {
    const NAME: &'static str = "baleine-rmi";

    fn run(self, _: Vec<std::ffi::OsString>) -> Result<ExitCode, UsageError> {
        let config = config::load().map_err(|e| UsageError(e.to_string()))?;
        let mut targets = Vec::new();
        let login = config::login_name();
        for word in &self.tags {
            let mut target = parse_target(word, &config).map_err(UsageError)?;
            // A bare name means the user's own, as baleine-save and
            // baleine-build name them under SAVE_NAMESPACE; one already
            // under it (as baleine-list prints it) stays as it is.
            if let Some(namespace) = config.save_namespace.as_deref() {
                let prefix = format!("{}/", namespace.replace("%u", &login));
                if !target.name.starts_with(&prefix) {
                    target.within(Some(namespace), &login).map_err(UsageError)?;
                }
            }
            targets.push(target);
        }
        if self.tags.is_empty() {
            if std::io::stdin().is_terminal() {
                return Err(UsageError(
                    "no tags: give NAME:TAG arguments, or baleine-list's lines on stdin".into(),
                ));
            }
            // Read whole in a thread of its own: Ctrl-C ends the wait.
            let lines = crate::framework::signals::unless_interrupted(|| {
                // Bounded in bytes too: a line without end (/dev/zero) is no tag.
                std::io::Read::take(std::io::stdin().lock(), MAX_STDIN_BYTES)
                    .lines()
                    .take(MAX_TAGS + 1)
                    .collect::<Vec<_>>()
            });
            let Some(lines) = lines else {
                return Ok(ExitCode::from(exit::interrupted_status()));
            };
            if lines.len() > MAX_TAGS {
                return Err(UsageError(format!("more than {MAX_TAGS} lines on stdin")));
            }
            for (number, line) in (1..).zip(lines) {
                let line = line.map_err(|e| UsageError(format!("stdin line {number}: {e}")))?;
                if line.trim().is_empty() {
                    continue;
                }
                let target = target_of_line(&line, &config)
                    .map_err(|e| UsageError(format!("stdin line {number}: {e}")))?;
                targets.push(target);
            }
        }
        targets.sort_by(|a, b| (&a.name, &a.tag).cmp(&(&b.name, &b.tag)));
        targets.dedup();
        let admin = Registry::admin(&config.registry_admin_url);
        let plan = plan(&admin, &targets);
        let deletable: Vec<&Planned> = plan.iter().filter(|p| p.failure.is_none()).collect();
        if !self.yes && !self.dry_run && !deletable.is_empty() {
            let names: Vec<String> = deletable
                .iter()
                .map(|p| format!("{}:{}", p.target.name, p.target.tag))
                .collect();
            let question = format!(
                "delete {} tag(s) from the registry: {}?",
                names.len(),
                names.join(" ")
            );
            if !confirm::ask(&question, "delete")? {
                if stop::interrupted() {
                    eprintln!("baleine-rmi: interrupted, nothing deleted");
                    return Ok(ExitCode::from(exit::interrupted_status()));
                }
                eprintln!("baleine-rmi: cancelled, nothing deleted");
                return Ok(ExitCode::from(exit::USAGE));
            }
        }
        // Looked up again now: a tag pushed onto one of these images while
        // the question waited must keep its image.
        let plan = if self.yes || self.dry_run {
            plan
        } else {
            self::plan(&admin, &targets)
        };
        let writer = Writer::without_stages(Run {
            action: "rmi",
            total: Some(plan.len()),
            view: Table::boxed(COLUMNS).filter(|_| !self.json),
            subject: TAGS,
            progress: true,
            quiet: self.quiet,
            failures_on_stdout: true,
        });
        for planned in &plan {
            // Our reader is gone (`| head -1`): delete nothing more.
            if stop::stdout_closed() {
                break;
            }
            let _ = writer
                .records
                .send(planned.delete(&admin, &config, self.dry_run));
        }
        Ok(exit::status(&writer.finish()))
    }
}

/// A record per tag: the summary names each by its image, and the failed
/// records themselves, piped back, retry them.
const TAGS: Subject = Subject {
    noun: "tag",
    field: Some("image"),
    retry: Some("jq -c 'select(.ok | not)'"),
};

/// `NAME:TAG`, or the image as nodes name it (`SAVE_URL[:SAVE_PORT]/NAME:TAG`).
fn parse_target(word: &str, config: &Config) -> Result<RepoName, String> {
    let prefixes = [
        format!("{}/", config.save_url),
        config
            .save_port
            .map_or(String::new(), |port| format!("{}:{port}/", config.save_url)),
        format!("{}/", config.registry_url),
    ];
    let name = prefixes
        .iter()
        .filter(|p| !p.is_empty())
        .find_map(|p| word.strip_prefix(p.as_str()))
        .unwrap_or(word);
    let last = name.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') {
        return Err(format!(
            "{word:?}: give the tag to delete (NAME:TAG); a registry deletes tags, not names"
        ));
    }
    RepoName::parse(name)
}

/// A stdin line: baleine-list's JSON (`repository`, `tag`) or a word.
fn target_of_line(line: &str, config: &Config) -> Result<RepoName, String> {
    let line = line.trim();
    if line.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not a JSON record: {e}"))?;
        return match (value["repository"].as_str(), value["tag"].as_str()) {
            (Some(repository), Some(tag)) => parse_target(&format!("{repository}:{tag}"), config),
            _ => match value["image"].as_str() {
                Some(image) => parse_target(image, config),
                None => Err("a JSON record without repository and tag (nor image)".into()),
            },
        };
    }
    parse_target(line, config)
}

/// One tag to delete, and why it cannot be, when it cannot.
struct Planned {
    target: RepoName,
    digest: Option<String>,
    /// The other tags going with it (same image, also asked for).
    along: Vec<String>,
    failure: Option<Failure>,
}

/// Looks each tag up, and refuses those whose image another tag, not
/// asked for, still names.
fn plan(admin: &Registry, targets: &[RepoName]) -> Vec<Planned> {
    let mut planned: Vec<Planned> = targets.iter().map(|t| look_up(admin, t)).collect();
    let mut repositories: Vec<&str> = planned
        .iter()
        .filter(|p| p.digest.is_some())
        .map(|p| p.target.name.as_str())
        .collect();
    repositories.sort();
    repositories.dedup();
    let tags = every_tag(admin, &repositories);
    let asked: Vec<(String, String)> = planned
        .iter()
        .filter(|p| p.digest.is_some())
        .map(|p| (p.target.name.clone(), p.target.tag.clone()))
        .collect();
    for entry in planned.iter_mut() {
        entry.keep_what_others_name(&tags, &asked);
    }
    planned
}

/// One tag and the digest of the image it names, or why it cannot be deleted.
fn look_up(admin: &Registry, target: &RepoName) -> Planned {
    let mut entry = Planned {
        target: target.clone(),
        digest: None,
        along: Vec::new(),
        failure: None,
    };
    match admin.manifest_digest(&target.name, &target.tag) {
        Ok(Some(digest)) => entry.digest = Some(digest),
        Ok(None) => {
            entry.failure = Some(Failure::new(
                Stage::Inspect,
                format!(
                    "{}:{}: no such tag in the registry",
                    target.name, target.tag
                ),
            ))
        }
        Err(e) => entry.failure = Some(Failure::new(Stage::Inspect, e.to_string())),
    }
    entry
}

/// Every tag of `repositories` and the image each names; a repository
/// whose tags cannot all be read is named with why, instead.
struct Tags {
    /// (repository, tag, digest)
    named: Vec<(String, String, String)>,
    /// (repository, why)
    unreadable: Vec<(String, String)>,
}

fn every_tag(admin: &Registry, repositories: &[&str]) -> Tags {
    let mut tags = Tags {
        named: Vec::new(),
        unreadable: Vec::new(),
    };
    for &repository in repositories {
        let listed = match admin.tags(repository) {
            Ok(listed) => listed,
            Err(e) => {
                tags.unreadable.push((repository.to_owned(), e.to_string()));
                continue;
            }
        };
        for tag in listed {
            match admin.manifest_digest(repository, &tag) {
                Ok(Some(digest)) => tags.named.push((repository.to_owned(), tag, digest)),
                // Gone meanwhile: it names nothing.
                Ok(None) => {}
                // Unknown: it may name the image; delete nothing there.
                Err(e) => {
                    tags.unreadable.push((
                        repository.to_owned(),
                        format!("cannot tell which image {repository}:{tag} names: {e}"),
                    ));
                    break;
                }
            }
        }
    }
    tags
}

impl Planned {
    /// Refuses this tag when another tag, not `asked` for, names its image
    /// (or when that cannot be told); else notes the asked tags going along.
    fn keep_what_others_name(&mut self, tags: &Tags, asked: &[(String, String)]) {
        let Some(digest) = self.digest.clone() else {
            return;
        };
        let repository = self.target.name.clone();
        if let Some((_, e)) = tags.unreadable.iter().find(|(r, _)| *r == repository) {
            self.failure = Some(Failure::new(Stage::Inspect, e.clone()));
            return;
        }
        let others: Vec<&(String, String, String)> = tags
            .named
            .iter()
            .filter(|(r, t, d)| *r == repository && *d == digest && *t != self.target.tag)
            .collect();
        let kept: Vec<String> = others
            .iter()
            .filter(|(r, t, _)| !asked.contains(&(r.clone(), t.clone())))
            .map(|(r, t, _)| format!("{r}:{t}"))
            .collect();
        if !kept.is_empty() {
            self.failure = Some(
                Failure::new(
                    Stage::Referenced,
                    format!(
                        "{digest} is also tagged {}: deleting it would delete that tag too; \
                         give both to delete both",
                        kept.join(", ")
                    ),
                )
                .with("also_tagged", kept),
            );
            return;
        }
        self.along = others.iter().map(|(r, t, _)| format!("{r}:{t}")).collect();
    }
}

impl Planned {
    fn delete(&self, admin: &Registry, config: &Config, dry_run: bool) -> Record {
        let image = target_image(
            &config.save_url,
            config.save_port,
            &self.target.name,
            &self.target.tag,
        );
        let base = Fields::new()
            .with("image", image)
            .with("repository", self.target.name.as_str())
            .with("tag", self.target.tag.as_str())
            .with("digest", self.digest.clone());
        let deleted = Fields::new()
            .with("deleted", true)
            .with("along", self.along.clone());
        let result = match (&self.failure, &self.digest) {
            (Some(failure), _) => Err(failure.clone()),
            _ if stop::interrupted() => Err(Failure::not_started()),
            _ if dry_run => Ok(Fields::new()
                .with("dry_run", true)
                .with("along", self.along.clone())),
            (None, Some(digest)) => match admin.delete_manifest(&self.target.name, digest) {
                // Deleted already along with another tag of the same image.
                Err(e) if e.not_found && !self.along.is_empty() => Ok(deleted),
                Err(e) => Err(Failure::new(Stage::Delete, e.to_string())),
                Ok(()) => Ok(deleted),
            },
            (None, None) => Err(Failure::new(Stage::Internal, "no digest")),
        };
        Record::of(None, "rmi", result).after(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        config::load_from(&[], &|_| None).unwrap()
    }

    #[test]
    fn targets_are_tags_as_given_or_as_listed() {
        let config = config();
        let target = parse_target("faraday.repo/exp:v1", &config).unwrap();
        assert_eq!((target.name.as_str(), target.tag.as_str()), ("exp", "v1"));
        assert_eq!(
            parse_target("team/exp:v2", &config).unwrap().name,
            "team/exp"
        );
        assert!(parse_target("exp", &config)
            .unwrap_err()
            .contains("give the tag"));
        assert!(parse_target("other.host/exp:v1", &config).is_err());
        let listed = r#"{"repository":"exp","tag":"v3","image":"faraday.repo/exp:v3"}"#;
        assert_eq!(target_of_line(listed, &config).unwrap().tag, "v3");
        assert!(target_of_line("{not json", &config).is_err());
    }
}
