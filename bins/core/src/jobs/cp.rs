//! `baleine-cp`: files into the managed container of every node (`--to`), or out of it into DIR/NODE/ (`--from`), as tar streams over ssh.

use crate::domain::nodes::NodeName;
use crate::domain::own_dir::OwnDir;
use crate::domain::record::{Failure, Fields, Stage};
use crate::framework::cli::Tool;
use crate::framework::fleet::{create_output_dir, CommandEnd, Fleet, Job, Remote, Session};
use crate::framework::input::Request;
use crate::framework::table::{self, Cell, Column};
use crate::framework::UsageError;
use crate::remote::protocol::{killed_line, OUTPUT_MARK};
use crate::remote::quote::quote;
use crate::remote::script::{Docker, Script};
use crate::remote::ssh::{OutputFile, PayloadWiring, SessionIo, Sink};
use crate::remote::tarball::{self, Packed};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

crate::fleet_args! {
    /// Copy files into the managed container of each node (--to DIR -- SRC...),
    /// or out of it (--from PATH --output-dir DIR, each node's copy in
    /// DIR/NODE/). One JSON record per node with files, bytes and elapsed_ms.
    #[argh(
        example = "baleine-cp 1-5 --to /root/input -- params.json scripts/",
        example = "baleine-cp 1-8 --to /etc/exp -- 'configs/{{node}}.env'",
        example = "baleine-cp -a --from /root/results --output-dir collected/",
        note = "The files travel as a tar stream over the node's ssh session: nothing is written on \
                the node's disk but inside the container. --to keeps modes and creates the directory \
                if missing; a source naming {{node}} or {{index}} is each node's own (configs/{{node}}.env \
                sends fit07 configs/fit07.env), and a node whose source is missing gets a failed record \
                while the others go on. --from writes each node's copy to DIR/NODE/BASENAME; a tar from a node can \
                never write outside DIR/NODE (absolute paths, `..`, links leading out, devices are \
                refused and named in the record, which is then not ok).",
        error_code(1, "some node failed (no container, missing path, refused entries)"),
        error_code(2, "usage, configuration or node-list error, or a missing source; nothing was done"),
        error_code(130, "interrupted; every node still got a record"),
        error_code(143, "ended by SIGTERM (129: by SIGHUP), as 130 for Ctrl-C")
    )]
    pub struct CpArgs {
        timeout: (600, "give up on a node after this long: seconds, or 90s, 5m, 1h30m (default: 600)"),
        /// the directory in the container to copy the sources given after -- into
        #[argh(option, arg_name = "DIR")]
        pub to: Option<String>,
        /// the file or directory in the container to copy out
        #[argh(option, arg_name = "PATH")]
        pub from: Option<String>,
        /// with --from: where each node's copy goes, as DIR/NODE/BASENAME
        #[argh(option, arg_name = "DIR")]
        pub output_dir: Option<PathBuf>,
    }
}

impl Tool for CpArgs {
    const NAME: &'static str = "baleine-cp";
    const AFTER_DASHES: crate::framework::cli::AfterDashes =
        crate::framework::cli::AfterDashes::Sources;

    fn run(self, sources: Vec<OsString>) -> Result<ExitCode, UsageError> {
        let direction = match (&self.to, &self.from) {
            (Some(dir), None) => {
                let dir = container_path("--to", dir)?;
                if sources.is_empty() {
                    return Err(UsageError(
                        "--to DIR copies the files given after --: baleine-cp 1-5 --to /root/in -- FILE..."
                            .into(),
                    ));
                }
                if self.output_dir.is_some() {
                    return Err(UsageError("--output-dir goes with --from".into()));
                }
                // Sources naming {node} or {index} are each node's own,
                // packed when its turn comes; the others are packed once.
                let per_node = sources.iter().any(|s| has_placeholder(s));
                let packed = match per_node {
                    true => None,
                    false => Some(pack_sources(&sources, &dir).map_err(UsageError)?),
                };
                Direction::To {
                    dir,
                    sources,
                    packed,
                }
            }
            (None, Some(path)) => {
                let path = container_path("--from", path)?;
                if !sources.is_empty() {
                    return Err(UsageError(
                        "--from copies out of the container: no sources after --".into(),
                    ));
                }
                let output_dir = self.output_dir.clone().ok_or_else(|| {
                    UsageError("--from PATH needs --output-dir DIR (each node's copy in DIR/NODE/)".into())
                })?;
                let output_dir = create_output_dir(&output_dir)?;
                Direction::From { path, output_dir }
            }
            _ => {
                return Err(UsageError(
                    "give either --to CONTAINER_DIR -- SRC... or --from CONTAINER_PATH --output-dir DIR"
                        .into(),
                ))
            }
        };
        let fleet = Fleet::prepare(self.fleet_options())?;
        let job = CpJob {
            docker: Docker::from_config(&fleet.config),
            direction,
            tag: fleet.tag.clone(),
        };
        Ok(fleet.run(&job))
    }
}

/// An absolute path in the container, without `..`.
fn container_path(option: &str, path: &str) -> Result<String, UsageError> {
    let plain = Path::new(path).components().all(|c| {
        matches!(
            c,
            Component::RootDir | Component::Normal(_) | Component::CurDir
        )
    });
    if !path.starts_with('/') || !plain || path.contains('\0') {
        return Err(UsageError(format!(
            "{option} {path:?}: an absolute path in the container, without `..`"
        )));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    })
}

enum Direction {
    /// The sources under `dir` from `/`: packed once for every node, or
    /// (naming {node} or {index}) for each node in its turn.
    To {
        dir: String,
        /// As given: a file name is bytes, not always UTF-8.
        sources: Vec<OsString>,
        packed: Option<Packed>,
    },
    From {
        path: String,
        output_dir: OwnDir,
    },
}

struct CpJob {
    docker: Docker,
    direction: Direction,
    /// This run's tag: the node's timer names it when it stops a copy.
    tag: String,
}

impl CpJob {
    /// The container must exist; then `docker cp` with the tar on the
    /// session's stdin (`--to`) or stdout (`--from`).
    fn script(&self) -> String {
        let mut script = Script::new();
        script.stage(Stage::Copy);
        let container = &self.docker.container;
        self.docker.require_managed(&mut script, "nothing to copy");
        match &self.direction {
            // Docker creates the missing directories of the tar's paths,
            // which are DIR/NAME from the root: nothing else is touched.
            Direction::To { .. } => {
                script.must(&self.docker.words(&["cp", "-", &format!("{container}:/")]));
            }
            Direction::From { path, .. } => {
                script.line(&format!("echo {OUTPUT_MARK} >&2"));
                script.line(&format!(
                    "exec {}",
                    quote(
                        &self
                            .docker
                            .words(&["cp", &format!("{container}:{path}"), "-"])
                    )
                ));
            }
        }
        script.text().to_owned()
    }
}

/// What a node's copy started from: with --from, where its tar is received;
/// with --to and sources of its own, their tar (removed once it is sent).
#[derive(Default)]
pub struct Started {
    received: Option<OutputFile>,
    own: Option<Packed>,
}

/// Whether a source names each node's own file (`configs/{node}.env`).
fn has_placeholder(source: &OsStr) -> bool {
    let unescaped = String::from_utf8_lossy(source.as_bytes()).replace("{{", "");
    unescaped.contains("{node}") || unescaped.contains("{index}")
}

/// The sources of `node`: {node} and {index} filled in.
fn node_sources(sources: &[OsString], node: &NodeName) -> Result<Vec<OsString>, String> {
    sources
        .iter()
        .map(|source| {
            crate::domain::nodes::expand_placeholders_in_bytes(source.as_bytes(), node)
                .map(OsString::from_vec)
        })
        .collect()
}

/// The sources packed under `dir` (a container path from `/`), each under
/// the name given. A link given by name is followed (as `cp -H`): what it
/// leads to is copied, under the name given. A missing source is named.
fn pack_sources(sources: &[OsString], dir: &str) -> Result<Packed, String> {
    let prefix = Path::new(dir.trim_matches('/'));
    let items = sources
        .iter()
        .map(|src| {
            let given = PathBuf::from(src);
            let shown = given.display();
            let local = given.canonicalize().map_err(|e| format!("{shown}: {e}"))?;
            // Path::file_name is None for `..`, and `.` never ends a path.
            let base = given
                .file_name()
                .or_else(|| local.file_name())
                .ok_or_else(|| format!("{shown}: names no file"))?;
            // Opened as given (a link followed), named as given in errors.
            Ok((given.clone(), prefix.join(base)))
        })
        .collect::<Result<Vec<_>, String>>()?;
    tarball::pack(&items).map_err(|e| format!("cannot pack the sources: {e}"))
}

impl Job for CpJob {
    type Context = Started;

    fn action(&self) -> &'static str {
        "cp"
    }

    fn columns(&self) -> &'static [Column] {
        &[
            table::NODE,
            Column {
                header: "FILES",
                cell: Cell::Text("files"),
            },
            Column {
                header: "SIZE",
                cell: Cell::Bytes("bytes"),
            },
            Column {
                header: "IN",
                cell: Cell::With(|record| {
                    let text = |key| record.get(key).and_then(|v| v.as_str());
                    text("to").or(text("dir")).unwrap_or_default().to_owned()
                }),
            },
            table::TOOK,
        ]
    }

    fn start(&self, node: &NodeName, _: Option<&Request>) -> Result<Remote<Started>, Failure> {
        let mut remote = Remote::new(self.script(), Started::default());
        match &self.direction {
            Direction::To {
                packed: Some(packed),
                ..
            } => remote.io.stdin = Some(packed.path.clone()),
            Direction::To { dir, sources, .. } => {
                let own = node_sources(sources, node)
                    .and_then(|sources| pack_sources(&sources, dir))
                    .map_err(|e| Failure::new(Stage::Copy, e))?;
                remote.io.stdin = Some(own.path.clone());
                remote.context.own = Some(own);
            }
            Direction::From { output_dir, .. } => {
                // Beside DIR/NODE, hidden, and removed once unpacked.
                let received = OutputFile {
                    dir: output_dir.clone(),
                    name: format!(".{node}.tar.part").into(),
                };
                remote.io = SessionIo {
                    payload: Some(PayloadWiring {
                        marker: OUTPUT_MARK.into(),
                        trailer: killed_line(&self.tag),
                        stdout: Sink::File(received.clone()),
                        stderr: Sink::Memory(64 * 1024),
                    }),
                    ..SessionIo::default()
                };
                remote.context.received = Some(received);
            }
        }
        Ok(remote)
    }

    fn finish(
        &self,
        node: &NodeName,
        started: Started,
        session: &Session,
    ) -> Result<Fields, Failure> {
        let received = started.received;
        // The received tar goes, whatever happens next.
        struct Removed(Option<OutputFile>);
        impl Drop for Removed {
            fn drop(&mut self) {
                if let Some(file) = &self.0 {
                    file.dir.remove_file(&file.name);
                }
            }
        }
        let received = Removed(received);
        match (&self.direction, &received.0) {
            (Direction::To { dir, packed, .. }, _) => {
                session.values()?;
                let sent = packed.as_ref().or(started.own.as_ref());
                Ok(Fields::new()
                    .with("to", dir.as_str())
                    .with("files", sent.map_or(0, |p| p.files))
                    .with("bytes", sent.map_or(0, |p| p.bytes)))
            }
            (Direction::From { path, output_dir }, Some(tar)) => {
                let payload = session.payload(Stage::Copy, "docker cp did not start")?;
                if session.command_end() != CommandEnd::Exited(Some(0)) {
                    // docker's own words are the error (e.g. no such path).
                    let said = payload.stderr.text.trim();
                    return Err(match session.values() {
                        Err(failure)
                            if said.is_empty()
                                || !matches!(failure.stage, Stage::Copy | Stage::Exec) =>
                        {
                            failure
                        }
                        _ if !said.is_empty() => Failure::new(Stage::Copy, said),
                        _ => Failure::new(Stage::Copy, "docker cp failed"),
                    });
                }
                // DIR/NODE by the handle of DIR, and unpacked through the
                // handle of DIR/NODE: a directory or link planted there, or
                // a parent renamed meanwhile, leads nowhere else.
                let dest = output_dir.path().join(node.as_str());
                let held = output_dir
                    .subdir(std::ffi::OsStr::new(node.as_str()))
                    .map_err(|e| Failure::new(Stage::Copy, format!("cannot write there: {e}")))?;
                let unpacked = output_dir
                    .open_file(&tar.name)
                    .and_then(|file| tarball::unpack(file, &held.held_path()))
                    .map_err(|e| {
                        Failure::new(Stage::Copy, format!("the node's tar is unreadable: {e}"))
                    })?;
                let fields = Fields::new()
                    .with("from", path.as_str())
                    .with("dir", dest.display().to_string())
                    .with("files", unpacked.files)
                    .with("bytes", unpacked.bytes);
                if unpacked.refused.is_empty() {
                    return Ok(fields);
                }
                Err(Failure::new(
                    Stage::Copy,
                    format!(
                        "refused what the node's tar would have written outside {}",
                        dest.display()
                    ),
                )
                .and(fields)
                .with("refused", unpacked.refused))
            }
            (Direction::From { .. }, None) => Err(Failure::new(Stage::Internal, "no received tar")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_absolute_and_plain() {
        assert_eq!(container_path("--to", "/root/in/").unwrap(), "/root/in");
        assert_eq!(container_path("--to", "/").unwrap(), "/");
        for bad in ["root/in", "/root/../etc", "", "./x"] {
            assert!(container_path("--to", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_script_copies_through_docker_cp() {
        let job = CpJob {
            docker: Docker::default(),
            tag: "t".into(),
            direction: Direction::From {
                path: "/root/my results".into(),
                output_dir: OwnDir::open(Path::new("/tmp")).unwrap(),
            },
        };
        let script = job.script();
        assert!(
            script.contains("exec docker cp 'container:/root/my results' -"),
            "{script}"
        );
    }
}
