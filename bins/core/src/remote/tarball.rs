//! Tar streams between the gateway and the nodes: local files packed for a node, and a node's tar unpacked so that nothing lands outside the destination.
//!
//! A node's root can send any tar it likes: absolute paths, `..`, links
//! pointing anywhere, devices. [`unpack`] writes only plain relative files,
//! directories and links that stay inside the destination, and names every
//! entry it refused.

use crate::domain::dockerignore::{Matched, Rules};
use crate::domain::own_dir::read_regular_file;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
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

/// The most an ignore file may hold: more is no list of patterns.
const MAX_IGNORE_FILE: u64 = 1024 * 1024;

/// The ignore file of a build context, as BuildKit chooses it: beside the
/// Dockerfile, `<Dockerfile>.dockerignore`, if there is one, else the
/// context's `.dockerignore`. Read failing closed: a file that is there
/// but unreadable, not a regular file, too large or not valid patterns is
/// an error naming it (file:line), never a context sent without its rules.
pub fn context_rules(dir: &Path, dockerfile: Option<&Path>) -> Result<Rules, String> {
    let specific = dockerfile.and_then(|file| {
        let name = file.file_name()?;
        let mut ignore = name.to_owned();
        ignore.push(".dockerignore");
        Some(file.with_file_name(ignore))
    });
    let chosen = specific
        .into_iter()
        .chain([dir.join(".dockerignore")])
        .find(|path| std::fs::symlink_metadata(path).is_ok());
    let Some(path) = chosen else {
        return Ok(Rules::default());
    };
    let bytes = read_regular_file(&path, MAX_IGNORE_FILE)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Rules::parse(&bytes).map_err(|e| match e.line {
        0 => format!("{}: {}", path.display(), e.why),
        line => format!("{}:{line}: {}", path.display(), e.why),
    })
}

/// Packs a build context as docker sends it: the directory less what its
/// ignore `rules` exclude (walked as BuildKit walks it: an excluded
/// directory is still walked for what a `!` pattern brings back, and sent
/// only before what it brings back), plus `extra` (a Dockerfile from
/// outside it, under the name given). The Dockerfile and `.dockerignore`
/// are always sent: the build needs the one, and a daemon that reads the
/// other then drops both from what `COPY .` sees, when they are excluded.
pub fn pack_context(dir: &Path, rules: &Rules, extra: Option<(&Path, &str)>) -> io::Result<Packed> {
    let (packed, builder) = temporary()?;
    let mut packer = Packer { builder, packed };
    let root = open_dir_following(dir)?;
    packer.walk_context(&root, Path::new(""), rules, None, &mut Vec::new())?;
    if let Some((path, name)) = extra {
        packer.item(path, Path::new(name))?;
    }
    packer.finish()
}

/// Packs `items` (a local file or directory, and its name in the tar),
/// modes kept and links inside directories stored as links, into a new
/// temporary file. An item given by a link is what it leads to.
pub fn pack(items: &[(PathBuf, PathBuf)]) -> io::Result<Packed> {
    let (packed, builder) = temporary()?;
    let mut packer = Packer { builder, packed };
    for (local, name) in items {
        packer.item(local, name)?;
    }
    packer.finish()
}

/// Writes what it packs from open descriptors: every entry is opened
/// under its directory's descriptor, never following a link (a link swapped
/// in after the directory was listed is refused, not followed), checked to
/// be what was listed, and a file's bytes are exactly the size its open
/// descriptor had: one that changed while packed fails the packing, named.
struct Packer {
    builder: tar::Builder<BufWriter<File>>,
    packed: Packed,
}

/// What an entry of a directory is, as listed (not followed).
struct Listed {
    name: OsString,
    stat: FileStat,
}

impl Packer {
    fn finish(self) -> io::Result<Packed> {
        self.builder.into_inner()?.flush()?;
        Ok(self.packed)
    }

    /// A file or directory given by the user, followed if a link.
    fn item(&mut self, local: &Path, name: &Path) -> io::Result<()> {
        let fd = open_following(local)?;
        let stat = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
        match kind_of(&stat) {
            SFlag::S_IFDIR => {
                self.header_only(name, &stat, tar::EntryType::Directory)?;
                self.walk_all(&fd, name)
            }
            SFlag::S_IFREG => self.file(fd, &stat, name, local),
            _ => Err(io::Error::other(format!(
                "{}: not a regular file or a directory",
                local.display()
            ))),
        }
    }

    /// Everything under an open directory, under `prefix` in the tar.
    fn walk_all(&mut self, dir: &OwnedFd, prefix: &Path) -> io::Result<()> {
        for listed in list(dir)? {
            let name = prefix.join(&listed.name);
            self.entry(dir, &listed, &name, &mut |packer, fd| {
                packer.walk_all(fd, &name)
            })?;
        }
        Ok(())
    }

    /// A context directory's entries, each judged by the ignore rules with
    /// its directory's results; `pending`, the excluded directories above
    /// it, sent only before something under them is.
    fn walk_context(
        &mut self,
        dir: &OwnedFd,
        prefix: &Path,
        rules: &Rules,
        parent: Option<&Matched>,
        pending: &mut Vec<(PathBuf, FileStat)>,
    ) -> io::Result<()> {
        for listed in list(dir)? {
            let name = prefix.join(&listed.name);
            let (excluded, matched) = rules.excludes(name.as_os_str().as_bytes(), parent);
            let always = prefix.as_os_str().is_empty()
                && (listed.name == "Dockerfile" || listed.name == ".dockerignore");
            let is_dir = kind_of(&listed.stat) == SFlag::S_IFDIR;
            if excluded && !always {
                if is_dir && rules.has_exclusions() {
                    let sub = open_listed(dir, &listed)?;
                    pending.push((name.clone(), listed.stat));
                    self.walk_context(&sub, &name, rules, Some(&matched), pending)?;
                    pending.pop();
                }
                continue;
            }
            for (path, stat) in pending.drain(..) {
                self.header_only(&path, &stat, tar::EntryType::Directory)?;
            }
            self.entry(dir, &listed, &name, &mut |packer, fd| {
                packer.walk_context(fd, &name, rules, Some(&matched), &mut Vec::new())
            })?;
        }
        Ok(())
    }

    /// One listed entry: a directory (then `inside` walks it), a regular
    /// file, a link (as a link), a FIFO or device (as docker sends them,
    /// without content); a socket is nothing to send.
    fn entry(
        &mut self,
        dir: &OwnedFd,
        listed: &Listed,
        name: &Path,
        inside: &mut dyn FnMut(&mut Packer, &OwnedFd) -> io::Result<()>,
    ) -> io::Result<()> {
        match kind_of(&listed.stat) {
            SFlag::S_IFDIR => {
                let fd = open_listed(dir, listed)?;
                self.header_only(name, &listed.stat, tar::EntryType::Directory)?;
                inside(self, &fd)
            }
            SFlag::S_IFREG => {
                let fd = open_listed(dir, listed)?;
                self.file(fd, &listed.stat, name, name)
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(dir, listed.name.as_os_str())
                    .map_err(io::Error::from)?;
                let mut header = header_of(&listed.stat, tar::EntryType::Symlink, 0);
                self.builder
                    .append_link(&mut header, name, Path::new(&target))
            }
            SFlag::S_IFIFO => self.header_only(name, &listed.stat, tar::EntryType::Fifo),
            SFlag::S_IFCHR => self.header_only(name, &listed.stat, tar::EntryType::Char),
            SFlag::S_IFBLK => self.header_only(name, &listed.stat, tar::EntryType::Block),
            _ => Ok(()),
        }
    }

    fn header_only(
        &mut self,
        name: &Path,
        stat: &FileStat,
        kind: tar::EntryType,
    ) -> io::Result<()> {
        let mut header = header_of(stat, kind, 0);
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let rdev = stat.st_rdev;
            header.set_device_major(nix::sys::stat::major(rdev) as u32)?;
            header.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
        }
        self.builder.append_data(&mut header, name, io::empty())
    }

    /// A regular file's bytes: exactly the size it had once open, and it
    /// must still have that size, and no more bytes, once copied.
    fn file(
        &mut self,
        fd: OwnedFd,
        listed: &FileStat,
        name: &Path,
        shown: &Path,
    ) -> io::Result<()> {
        let file = File::from(fd);
        let stat = nix::sys::stat::fstat(&file).map_err(io::Error::from)?;
        let changed = || {
            io::Error::other(format!(
                "{}: changed while it was packed (packed nothing of it)",
                shown.display()
            ))
        };
        if kind_of(&stat) != SFlag::S_IFREG
            || stat.st_ino != listed.st_ino
            || stat.st_dev != listed.st_dev
        {
            return Err(changed());
        }
        self.copy(&file, &stat, name).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => changed(),
            _ => e,
        })
    }

    /// The bytes of `file`, which had `stat` once open: a file that shrank
    /// or grew since, or was written to, is InvalidData.
    fn copy(&mut self, file: &File, stat: &FileStat, name: &Path) -> io::Result<()> {
        let changed = || io::Error::from(io::ErrorKind::InvalidData);
        let size = stat.st_size.max(0) as u64;
        let mut header = header_of(stat, tar::EntryType::Regular, size);
        let mut exact = Exact { file, left: size };
        self.builder
            .append_data(&mut header, name, &mut exact)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => changed(),
                _ => e,
            })?;
        let mut more = [0u8; 1];
        let after = nix::sys::stat::fstat(file).map_err(io::Error::from)?;
        if (&*file).read(&mut more)? != 0
            || after.st_size != stat.st_size
            || (after.st_mtime, after.st_mtime_nsec) != (stat.st_mtime, stat.st_mtime_nsec)
        {
            return Err(changed());
        }
        self.packed.files += 1;
        self.packed.bytes += size;
        Ok(())
    }
}

/// Exactly `left` bytes of a file: fewer is an error (the file shrank), not
/// a short tar entry.
struct Exact<'a> {
    file: &'a File,
    left: u64,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let most = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.file.read(&mut buf[..most])?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= read as u64;
        Ok(read)
    }
}

fn kind_of(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

/// A tar header as docker's archive writes one: mode, owner, time.
fn header_of(stat: &FileStat, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(stat.st_mode & 0o7777);
    header.set_uid(u64::from(stat.st_uid));
    header.set_gid(u64::from(stat.st_gid));
    header.set_mtime(stat.st_mtime.max(0) as u64);
    header
}

/// The entries of an open directory, sorted by name (as docker sends
/// them), each as it is (links not followed).
fn list(dir: &OwnedFd) -> io::Result<Vec<Listed>> {
    let mut names: Vec<OsString> = Vec::new();
    let mut listing = nix::dir::Dir::from_fd(dir.try_clone()?).map_err(io::Error::from)?;
    for entry in listing.iter() {
        let entry = entry.map_err(io::Error::from)?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_owned());
        }
    }
    // The listing shares the offset of `dir`'s description: rewound for
    // whoever lists it next.
    drop(listing);
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let stat = nix::sys::stat::fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(io::Error::from)?;
            Ok(Listed { name, stat })
        })
        .collect()
}

/// Opens a listed entry under its directory without following a link, and
/// checks it is the very one listed.
fn open_listed(dir: &OwnedFd, listed: &Listed) -> io::Result<OwnedFd> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    if kind_of(&listed.stat) == SFlag::S_IFDIR {
        flags |= OFlag::O_DIRECTORY;
    }
    let fd = nix::fcntl::openat(dir, listed.name.as_os_str(), flags, Mode::empty())
        .map_err(io::Error::from)?;
    let stat = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
    if stat.st_ino != listed.stat.st_ino || stat.st_dev != listed.stat.st_dev {
        return Err(io::Error::other(format!(
            "{}: replaced while it was packed",
            Path::new(&listed.name).display()
        )));
    }
    Ok(fd)
}

/// Opens what the user named (a link there is followed, as `cp -H` does),
/// without blocking on a FIFO.
fn open_following(path: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

fn open_dir_following(path: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY)
        .open(path)?;
    Ok(OwnedFd::from(file))
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
    // The user's umask, never the node's say-so: a 0777 directory or a
    // 0666 file from a node lands as 0755 and 0644 under umask 022.
    archive.set_mask(crate::domain::own_dir::umask());
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

    fn names_in(packed: &Packed) -> Vec<String> {
        let mut names: Vec<String> = tar::Archive::new(open(&packed.path).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_context_is_sent_as_buildkit_walks_it() {
        let root = scratch("context");
        for dir in [".git", "logs", "build"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for (file, text) in [
            (".git/config", "x"),
            ("Dockerfile", "FROM busybox"),
            ("app.txt", "app"),
            ("id.key", "secret"),
            ("logs/x.log", "log"),
            ("logs/keep.txt", "kept"),
            ("build/m.o", "o"),
        ] {
            std::fs::write(root.join(file), text).unwrap();
        }
        let ignore = ".git\nDockerfile\n*.key\nlogs\n!logs/keep.txt\n/build/*.o\n";
        std::fs::write(root.join(".dockerignore"), ignore).unwrap();
        let rules = context_rules(&root, Some(&root.join("Dockerfile"))).unwrap();
        let packed = pack_context(&root, &rules, None).unwrap();
        // `logs` is sent only for the file brought back under it; the
        // Dockerfile and the ignore file always (the daemon drops them).
        assert_eq!(
            names_in(&packed),
            [
                ".dockerignore",
                "Dockerfile",
                "app.txt",
                "build",
                "logs",
                "logs/keep.txt"
            ]
        );
        // The Dockerfile's own ignore file, when there is one, instead.
        std::fs::write(root.join("Dockerfile.dockerignore"), "app.txt\n").unwrap();
        let rules = context_rules(&root, Some(&root.join("Dockerfile"))).unwrap();
        let names = names_in(&pack_context(&root, &rules, None).unwrap());
        assert!(!names.contains(&"app.txt".to_owned()), "{names:?}");
        assert!(names.contains(&"id.key".to_owned()), "{names:?}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn an_ignore_file_that_cannot_be_read_as_docker_would_is_refused_by_name() {
        let root = scratch("bad-ignore");
        std::fs::create_dir_all(&root).unwrap();
        let ignore = root.join(".dockerignore");
        nix::unistd::mkfifo(&ignore, Mode::from_bits_truncate(0o600)).unwrap();
        let error = context_rules(&root, None).unwrap_err();
        assert!(error.contains("not a regular file"), "{error}");
        std::fs::remove_file(&ignore).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &ignore).unwrap();
        let error = context_rules(&root, None).unwrap_err();
        assert!(
            error.contains(".dockerignore: not a regular file"),
            "{error}"
        );
        std::fs::remove_file(&ignore).unwrap();
        std::fs::write(&ignore, "ok\n[z-a]\n").unwrap();
        let error = context_rules(&root, None).unwrap_err();
        assert!(error.contains(".dockerignore:2: "), "{error}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_file_that_changes_while_packed_fails_the_packing_by_name() {
        let root = scratch("grows");
        std::fs::create_dir_all(&root).unwrap();
        let path = root.join("app.log");
        std::fs::write(&path, "line\n").unwrap();
        let mut packer = Packer {
            builder: temporary().unwrap().1,
            packed: temporary().unwrap().0,
        };
        // Appended to after its open: its extra bytes would have been
        // read as tar entries of their own. Refused instead.
        let file = File::open(&path).unwrap();
        let stat = nix::sys::stat::fstat(&file).unwrap();
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        log.write_all(b"etc/cron.d/evil\n").unwrap();
        let error = packer.copy(&file, &stat, Path::new("app.log")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        // Cut short after its open.
        let file = File::open(&path).unwrap();
        let stat = nix::sys::stat::fstat(&file).unwrap();
        log.set_len(2).unwrap();
        let error = packer.copy(&file, &stat, Path::new("app.log")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        // Another file than the one listed: named, refused.
        std::fs::write(root.join("other"), "x").unwrap();
        let listed = nix::sys::stat::stat(&root.join("other")).unwrap();
        let fd = open_following(&path).unwrap();
        let named = packer.file(fd, &listed, Path::new("app.log"), &path);
        assert!(named
            .unwrap_err()
            .to_string()
            .contains("app.log: changed while it was packed"));
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_link_swapped_in_after_the_listing_is_not_followed() {
        let root = scratch("swap");
        std::fs::create_dir_all(root.join("ctx")).unwrap();
        std::fs::write(root.join("ctx/notes.txt"), "mine").unwrap();
        std::fs::write(root.join("secret"), "theirs").unwrap();
        let dir = open_dir_following(&root.join("ctx")).unwrap();
        let listed = list(&dir).unwrap();
        std::fs::remove_file(root.join("ctx/notes.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("ctx/notes.txt")).unwrap();
        let error = open_listed(&dir, &listed[0]).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(nix::libc::ELOOP), "{error}");
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
