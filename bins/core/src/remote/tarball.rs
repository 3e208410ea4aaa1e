//! Tar streams between the gateway and the nodes: local files packed for a node, and a node's tar unpacked so that nothing lands outside the destination.
//!
//! A node's root can send any tar it likes: absolute paths, `..`, links
//! pointing anywhere, devices. [`unpack`] writes only plain relative files,
//! directories and links that stay inside the destination, and names every
//! entry it refused.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// A tar in a private temporary file of the gateway's, removed on drop.
pub struct Packed {
    pub path: PathBuf,
    /// Regular files in it, and their bytes.
    pub files: u64,
    pub bytes: u64,
}

impl Drop for Packed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A new temporary tar only we can read (it holds the user's files).
fn temporary() -> io::Result<(Packed, tar::Builder<BufWriter<File>>)> {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "baleine-{}-{}.tar",
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let packed = Packed {
        path,
        files: 0,
        bytes: 0,
    };
    let mut builder = tar::Builder::new(BufWriter::new(file));
    // Links are sent as links, as docker's own client does.
    builder.follow_symlinks(false);
    Ok((packed, builder))
}

/// Packs a build context as docker's own client sends it: the directory
/// less what its `.dockerignore` excludes (a secret left out of the
/// context must not reach the image), plus `extra` (a Dockerfile from
/// outside it, under the name given), which is always sent.
pub fn pack_context(dir: &Path, extra: Option<(&Path, &str)>) -> io::Result<Packed> {
    let ignore = std::fs::read_to_string(dir.join(".dockerignore")).unwrap_or_default();
    let ignore = DockerIgnore::parse(&ignore);
    let (mut packed, mut builder) = temporary()?;
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&relative))? {
            let entry = entry?;
            let name = relative.join(entry.file_name());
            let kind = entry.file_type()?;
            let excluded = ignore.excludes(&name.to_string_lossy());
            if kind.is_dir() {
                // Walked even when excluded: a `!` pattern may bring a file back.
                stack.push(name.clone());
                if !excluded {
                    builder.append_dir(&name, entry.path())?;
                }
            } else if !excluded
                || name == Path::new("Dockerfile")
                || name == Path::new(".dockerignore")
            {
                builder.append_path_with_name(entry.path(), &name)?;
                if kind.is_file() {
                    packed.files += 1;
                    packed.bytes += entry.metadata()?.len();
                }
            }
        }
    }
    if let Some((path, name)) = extra {
        builder.append_path_with_name(path, name)?;
    }
    builder.into_inner()?.flush()?;
    Ok(packed)
}

/// `.dockerignore` as docker reads it: one pattern a line (`*`, `?`, `**`),
/// `!` bringing back what an earlier line excluded, the last match winning;
/// a pattern that matches a directory excludes what is in it.
struct DockerIgnore(Vec<(bool, String)>);

impl DockerIgnore {
    fn parse(text: &str) -> DockerIgnore {
        DockerIgnore(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| match l.strip_prefix('!') {
                    Some(rest) => (false, clean(rest)),
                    None => (true, clean(l)),
                })
                .filter(|(_, p)| !p.is_empty())
                .collect(),
        )
    }

    fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (exclude, pattern) in &self.0 {
            // The path itself or one of its parents.
            let mut prefix = String::new();
            let matched = path.split('/').any(|part| {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                glob(pattern.as_bytes(), prefix.as_bytes())
            });
            if matched {
                excluded = *exclude;
            }
        }
        excluded
    }
}

/// A pattern as docker cleans it: no leading `/` or `./`, no empty parts.
fn clean(pattern: &str) -> String {
    pattern
        .trim()
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// `*` and `?` within a part of a path, `**` across parts.
fn glob(pattern: &[u8], path: &[u8]) -> bool {
    match pattern {
        [] => path.is_empty(),
        [b'*', b'*', b'/', rest @ ..] => {
            glob(rest, path)
                || path
                    .iter()
                    .enumerate()
                    .any(|(i, &c)| c == b'/' && glob(rest, &path[i + 1..]))
        }
        [b'*', b'*'] => true,
        [b'*', rest @ ..] => (0..=path.len())
            .take_while(|&i| i == 0 || path[i - 1] != b'/')
            .any(|i| glob(rest, &path[i..])),
        [b'?', rest @ ..] => path.first().is_some_and(|&c| c != b'/') && glob(rest, &path[1..]),
        [b'\\', c, rest @ ..] | [c, rest @ ..] => path.first() == Some(c) && glob(rest, &path[1..]),
    }
}

/// Packs `items` (a local file or directory, and its name in the tar),
/// modes kept and links stored as links, into a new temporary file.
pub fn pack(items: &[(PathBuf, PathBuf)]) -> io::Result<Packed> {
    let (mut packed, mut builder) = temporary()?;
    for (local, name) in items {
        let meta = std::fs::symlink_metadata(local)?;
        if meta.is_dir() {
            builder.append_dir_all(name, local)?;
            count_files(local, &mut packed)?;
        } else {
            builder.append_path_with_name(local, name)?;
            if meta.is_file() {
                packed.files += 1;
                packed.bytes += meta.len();
            }
        }
    }
    builder.into_inner()?.flush()?;
    Ok(packed)
}

fn count_files(dir: &Path, packed: &mut Packed) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() && !entry.file_type()?.is_symlink() {
            count_files(&entry.path(), packed)?;
        } else if meta.is_file() {
            packed.files += 1;
            packed.bytes += meta.len();
        }
    }
    Ok(())
}

/// What an unpacking wrote, and what it refused (`path: why`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
    pub refused: Vec<String>,
}

/// At most this many refusals are named (the rest are counted).
const NAMED_REFUSALS: usize = 20;

impl Unpacked {
    /// Names a refused entry (the first NAMED_REFUSALS; the rest are said
    /// to exist).
    fn refuse(&mut self, name: &str, why: &str) {
        match self.refused.len() {
            n if n < NAMED_REFUSALS => self.refused.push(format!("{name}: {why}")),
            NAMED_REFUSALS => self.refused.push("(more refused)".into()),
            _ => {}
        }
    }
}

/// Unpacks `tar` into `dest` (which must exist): regular files,
/// directories, and links whose target stays inside `dest`; modes without
/// set-id bits. Anything else is refused and named, never written.
pub fn unpack(tar: impl Read, dest: &Path) -> io::Result<Unpacked> {
    let mut unpacked = Unpacked::default();
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        // A node chooses these names: shown escaped, never as raw control bytes.
        let name = path.display().to_string().escape_debug().to_string();
        match admissible(&mut entry, &path, dest)? {
            Err(why) => unpacked.refuse(&name, &why),
            Ok(()) => write_entry(entry, &path, &name, dest, &mut unpacked),
        }
    }
    refuse_links_leading_out(dest, &mut unpacked);
    Ok(unpacked)
}

/// Whether an entry may be written, judged by its words: a plain relative
/// path, and a file, a directory, or a link that stays inside `dest`.
fn admissible<R: Read>(
    entry: &mut tar::Entry<R>,
    path: &Path,
    dest: &Path,
) -> io::Result<Result<(), String>> {
    if !is_plain_relative(path) {
        return Ok(Err(
            "an absolute or `..` path, outside the destination".into()
        ));
    }
    let target = || -> io::Result<PathBuf> {
        Ok(entry
            .link_name()?
            .map(|t| t.into_owned())
            .unwrap_or_default())
    };
    Ok(match entry.header().entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => Ok(()),
        tar::EntryType::Symlink => {
            let target = target()?;
            match link_stays_inside(path, &target) {
                true => Ok(()),
                false => Err(format!(
                    "a link to {}, outside the destination",
                    target.display()
                )),
            }
        }
        tar::EntryType::Link => {
            let target = target()?;
            // A hard link to a symlink is a copy of that symlink, judged
            // where it was, not where the copy lands.
            let to_link = std::fs::symlink_metadata(dest.join(&target))
                .is_ok_and(|m| m.file_type().is_symlink());
            match is_plain_relative(&target) && !to_link {
                true => Ok(()),
                false => Err("a hard link to a link or to outside the destination".into()),
            }
        }
        other => Err(format!("a {other:?} entry, not a file")),
    })
}

/// Writes an admissible entry, counting the files; a link that its words
/// kept inside but the links already there lead out (`a` -> `.`, then
/// `a/a/../..`) is taken back and refused.
fn write_entry<R: Read>(
    mut entry: tar::Entry<R>,
    path: &Path,
    name: &str,
    dest: &Path,
    unpacked: &mut Unpacked,
) {
    let kind = entry.header().entry_type();
    let size = entry.header().size().unwrap_or(0);
    let target = entry.link_name().ok().flatten().map(|t| t.into_owned());
    match entry.unpack_in(dest) {
        Ok(true) if kind == tar::EntryType::Symlink => {
            let link = dest.join(path);
            let parent = link.parent().unwrap_or(dest);
            let inside = dest.canonicalize().is_ok_and(|root| {
                resolves_inside(&root, parent, target.as_deref().unwrap_or(Path::new("")))
            });
            if !inside {
                let _ = std::fs::remove_file(&link);
                unpacked.refuse(name, "a link that leads outside the destination");
            }
        }
        Ok(true) => {
            if kind.is_file() {
                unpacked.files += 1;
                unpacked.bytes += size;
            }
        }
        Ok(false) => unpacked.refuse(name, "outside the destination"),
        Err(e) => unpacked.refuse(name, &e.to_string()),
    }
}

/// A link judged inside when it came may lead out once a later entry
/// replaced a link it goes through: every link is judged again, as they
/// all are, and removed if it leads out.
fn refuse_links_leading_out(dest: &Path, unpacked: &mut Unpacked) {
    let Ok(root) = dest.canonicalize() else {
        return;
    };
    let mut links = Vec::new();
    collect_links(&root, &mut links);
    for link in links {
        let target = std::fs::read_link(&link).unwrap_or_default();
        let parent = link.parent().unwrap_or(&root);
        if !resolves_inside(&root, parent, &target) {
            let _ = std::fs::remove_file(&link);
            let name = link
                .strip_prefix(&root)
                .unwrap_or(&link)
                .display()
                .to_string();
            unpacked.refuse(
                &name.escape_debug().to_string(),
                "a link that leads outside the destination",
            );
        }
    }
}

/// Every symlink under `dir`, without following any.
fn collect_links(dir: &Path, links: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_symlink() => links.push(entry.path()),
            Ok(kind) if kind.is_dir() => collect_links(&entry.path(), links),
            _ => {}
        }
    }
}

/// Only names: no root, no `..`, no prefix (`.` parts are harmless).
fn is_plain_relative(path: &Path) -> bool {
    path.components().next().is_some()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Whether a symlink at `path` (relative to the destination) pointing to
/// `target` resolves inside the destination, by its words alone.
fn link_stays_inside(path: &Path, target: &Path) -> bool {
    if target.is_absolute() || target.as_os_str().is_empty() {
        return false;
    }
    let mut depth = path.parent().map_or(0, |p| {
        p.components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count()
    });
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return false,
        }
    }
    true
}

/// Whether `target`, followed from directory `parent` as the kernel would
/// (the links already there resolved), stays under `root` at every step.
/// What does not exist yet holds no link: plain names only.
fn resolves_inside(root: &Path, parent: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let Ok(mut at) = parent.canonicalize() else {
        return false;
    };
    let parts: Vec<Component> = target.components().collect();
    let mut resolved = 0;
    for part in &parts {
        match at.join(part.as_os_str()).canonicalize() {
            Ok(next) => {
                if !next.starts_with(root) {
                    return false;
                }
                at = next;
                resolved += 1;
            }
            Err(_) => break,
        }
    }
    at.starts_with(root)
        && parts[resolved..]
            .iter()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Opens a packed or received tar for reading.
pub fn open(path: &Path) -> io::Result<File> {
    File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("baleine-tarball-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A tar written by hand, as a hostile node would: raw names, any type.
    fn hostile(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, link, data) in entries {
            let mut header = tar::Header::new_old();
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            let link = link.as_bytes();
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o4755);
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    #[test]
    fn a_hostile_tar_never_writes_outside_the_destination() {
        use tar::EntryType::*;
        let root = scratch("hostile");
        let dest = root.join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        let tar = hostile(&[
            ("ok/file", Regular, "", b"kept"),
            ("/etc-evil", Regular, "", b"x"),
            ("../escape", Regular, "", b"x"),
            ("ok/../../escape2", Regular, "", b"x"),
            ("out", Symlink, "..", b""),
            ("abs", Symlink, "/etc", b""),
            ("ok/inner", Symlink, "file", b""),
            ("hard", Link, "../../etc/passwd", b""),
            ("dev", Char, "", b""),
            ("fifo", Fifo, "", b""),
        ]);
        let unpacked = unpack(&tar[..], &dest).unwrap();
        assert_eq!(unpacked.files, 1, "{unpacked:?}");
        assert_eq!(std::fs::read(dest.join("ok/file")).unwrap(), b"kept");
        assert!(std::fs::symlink_metadata(dest.join("ok/inner")).is_ok());
        assert_eq!(unpacked.refused.len(), 8, "{unpacked:?}");
        for gone in ["escape", "escape2", "etc-evil"] {
            assert!(!root.join(gone).exists(), "{gone} written");
        }
        assert!(!dest.join("out").exists() && !dest.join("abs").exists());
        // No set-id bit survives.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dest.join("ok/file"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7000, 0, "{mode:o}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_link_inside_cannot_carry_a_later_write_outside() {
        use tar::EntryType::*;
        let root = scratch("through-link");
        let dest = root.join("dest");
        std::fs::create_dir_all(dest.join("a")).unwrap();
        // "a/up" -> ".." stays inside (dest); "a/up/../x" has `..` anyway.
        let tar = hostile(&[("a/up", Symlink, "..", b""), ("a/up/x", Regular, "", b"in")]);
        let unpacked = unpack(&tar[..], &dest).unwrap();
        assert!(!root.join("x").exists());
        assert!(unpacked.files <= 1);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn packed_files_come_back_with_their_modes() {
        use std::os::unix::fs::PermissionsExt;
        let root = scratch("roundtrip");
        let src = root.join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            src.join("sub/run.sh"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::fs::write(root.join("alone.txt"), "1").unwrap();
        let packed = pack(&[
            (src.clone(), "data/in/src".into()),
            (root.join("alone.txt"), "data/in/alone.txt".into()),
        ])
        .unwrap();
        assert_eq!((packed.files, packed.bytes), (2, 11));
        let dest = root.join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        let unpacked = unpack(open(&packed.path).unwrap(), &dest).unwrap();
        assert_eq!(unpacked.refused, Vec::<String>::new());
        let mode = std::fs::metadata(dest.join("data/in/src/sub/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);
        let path = packed.path.clone();
        drop(packed);
        assert!(!path.exists(), "the temporary tar is removed");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_link_through_links_that_leads_out_is_removed() {
        use tar::EntryType::*;
        let root = scratch("chain");
        let dest = root.join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        let tar = hostile(&[
            ("a", Symlink, ".", b""),
            ("q", Symlink, "a/a/a/../../..", b""),
            ("r", Symlink, "a/a/../../nothing", b""),
        ]);
        let unpacked = unpack(&tar[..], &dest).unwrap();
        assert!(std::fs::symlink_metadata(dest.join("a")).is_ok());
        assert!(
            std::fs::symlink_metadata(dest.join("q")).is_err(),
            "{unpacked:?}"
        );
        assert!(
            std::fs::symlink_metadata(dest.join("r")).is_err(),
            "{unpacked:?}"
        );
        assert_eq!(unpacked.refused.len(), 2, "{unpacked:?}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn links_that_lead_out_later_or_by_a_hard_link_are_removed() {
        use tar::EntryType::*;
        let root = scratch("later");
        let dest = root.join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        let tar = hostile(&[
            ("x", Regular, "", b"x"),
            ("a/l", Symlink, "../x", b""),
            ("top", Link, "a/l", b""),
            ("b/a/", Directory, "", b""),
            ("c", Symlink, "b", b""),
            ("m", Symlink, "c/a/../..", b""),
            ("c", Symlink, ".", b""),
        ]);
        let unpacked = unpack(&tar[..], &dest).unwrap();
        assert!(
            std::fs::symlink_metadata(dest.join("top")).is_err(),
            "{unpacked:?}"
        );
        assert!(
            std::fs::symlink_metadata(dest.join("m")).is_err(),
            "{unpacked:?}"
        );
        assert!(dest.join("a/l").exists());
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn dockerignore_keeps_secrets_out_of_a_context() {
        let ignore = DockerIgnore::parse(
            "# secrets\n.git\n*.key\n**/.env\nlogs/\n!logs/keep.txt\n/build/*.o\n",
        );
        for out in [
            ".git",
            ".git/config",
            "id.key",
            ".env",
            "a/b/.env",
            "logs/x.log",
            "build/m.o",
        ] {
            assert!(ignore.excludes(out), "{out} sent");
        }
        for kept in [
            "Dockerfile",
            "src/main.rs",
            "a/id.key",
            "logs/keep.txt",
            "build/m.c",
        ] {
            assert!(!ignore.excludes(kept), "{kept} left out");
        }
        let root = scratch("context");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "x").unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM busybox").unwrap();
        std::fs::write(root.join("app.txt"), "app").unwrap();
        std::fs::write(root.join(".dockerignore"), ".git\nDockerfile\n").unwrap();
        let packed = pack_context(&root, None).unwrap();
        let mut names: Vec<String> = tar::Archive::new(open(&packed.path).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, [".dockerignore", "Dockerfile", "app.txt"]);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn links_are_judged_by_where_they_lead() {
        assert!(link_stays_inside(Path::new("a/b/l"), Path::new("../c")));
        assert!(link_stays_inside(Path::new("a/l"), Path::new("..")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("..")));
        assert!(!link_stays_inside(Path::new("a/l"), Path::new("../../x")));
        assert!(!link_stays_inside(
            Path::new("a/l"),
            Path::new("/etc/passwd")
        ));
    }
}
