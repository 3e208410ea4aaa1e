//! Tar streams between the gateway and the nodes: local files packed for a node, and a node's tar unpacked so that nothing lands outside the destination.
//!
//! A node's root can send any tar it likes: absolute paths, `..`, links
//! pointing anywhere, devices. [`unpack`] writes only plain relative files,
//! directories and links that stay inside the destination, and names every
//! entry it refused.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
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

/// Packs `items` (a local file or directory, and its name in the tar),
/// modes kept and links stored as links, into a new temporary file.
pub fn pack(items: &[(PathBuf, String)]) -> io::Result<Packed> {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "baleine-{}-{}.tar",
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let mut packed = Packed {
        path,
        files: 0,
        bytes: 0,
    };
    let mut builder = tar::Builder::new(BufWriter::new(file));
    builder.follow_symlinks(false);
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

/// Unpacks `tar` into `dest` (which must exist): regular files,
/// directories, and links whose target stays inside `dest`; modes without
/// set-id bits. Anything else is refused and named, never written.
pub fn unpack(tar: impl Read, dest: &Path) -> io::Result<Unpacked> {
    let mut unpacked = Unpacked::default();
    let mut refusals = 0usize;
    let mut refuse = |unpacked: &mut Unpacked, name: &str, why: &str| {
        refusals += 1;
        if unpacked.refused.len() < NAMED_REFUSALS {
            unpacked.refused.push(format!("{name}: {why}"));
        } else if refusals == NAMED_REFUSALS + 1 {
            unpacked.refused.push("(more refused)".into());
        }
    };
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        // A node chooses these names: shown escaped, never as raw control bytes.
        let name = path.display().to_string().escape_debug().to_string();
        if !is_plain_relative(&path) {
            refuse(
                &mut unpacked,
                &name,
                "an absolute or `..` path, outside the destination",
            );
            continue;
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {}
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if !link_stays_inside(&path, &target) {
                    refuse(
                        &mut unpacked,
                        &name,
                        &format!("a link to {}, outside the destination", target.display()),
                    );
                    continue;
                }
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if !is_plain_relative(&target) {
                    refuse(
                        &mut unpacked,
                        &name,
                        "a hard link to outside the destination",
                    );
                    continue;
                }
            }
            other => {
                refuse(
                    &mut unpacked,
                    &name,
                    &format!("a {other:?} entry, not a file"),
                );
                continue;
            }
        }
        let size = entry.header().size().unwrap_or(0);
        let target = entry.link_name().ok().flatten().map(|t| t.into_owned());
        match entry.unpack_in(dest) {
            // Judged by its words a link stays inside; judged by the links
            // already there it may not (`a` -> `.`, then `a/a/../..`).
            Ok(true) if kind == tar::EntryType::Symlink => {
                let link = dest.join(&path);
                let parent = link.parent().unwrap_or(dest);
                let inside = dest.canonicalize().is_ok_and(|root| {
                    resolves_inside(&root, parent, target.as_deref().unwrap_or(Path::new("")))
                });
                if !inside {
                    let _ = std::fs::remove_file(&link);
                    refuse(
                        &mut unpacked,
                        &name,
                        "a link that leads outside the destination",
                    );
                }
            }
            Ok(true) => {
                if kind.is_file() {
                    unpacked.files += 1;
                    unpacked.bytes += size;
                }
            }
            Ok(false) => refuse(&mut unpacked, &name, "outside the destination"),
            Err(e) => refuse(&mut unpacked, &name, &e.to_string()),
        }
    }
    Ok(unpacked)
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
