//! Directories we write our output into (`--output-dir`, `--log`'s, cp's DIR/NODE): opened once, checked that no other user can plant a link there, and every file created under that handle, never through a link.
//!
//! On a shared gateway a co-user can plant `DIR/fit07.out -> ~victim/.bashrc`
//! or a directory `DIR/fit07` of their own. A directory is refused when
//! someone else could change its entries: writable by others (a group
//! that is not ours alone, or everyone) without the sticky bit, or not
//! ours unless it is root's and sticky (`/tmp`: the owner of a sticky
//! directory may still rename what is in it). In `/tmp`, an entry that is
//! not ours is never replaced, and a directory we make there must be ours.

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open output directory, checked.
#[derive(Debug, Clone)]
pub struct OwnDir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

impl PartialEq for OwnDir {
    fn eq(&self, other: &OwnDir) -> bool {
        self.path == other.path
    }
}

impl Eq for OwnDir {}

impl OwnDir {
    /// Makes `path` if missing (with its parents, under the user's umask),
    /// opens it and checks it.
    pub fn open(path: &Path) -> Result<OwnDir, String> {
        let shown = path.display();
        std::fs::create_dir_all(path).map_err(|e| format!("{shown}: {e}"))?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_directory()
            .open(path)
            .map_err(|e| format!("{shown}: {e}"))?;
        let fd = OwnedFd::from(file);
        let stat = nix::sys::stat::fstat(&fd).map_err(|e| format!("{shown}: {e}"))?;
        check(&stat).map_err(|why| format!("{shown}: {why}"))?;
        Ok(OwnDir {
            fd: Arc::new(fd),
            path: path.to_owned(),
        })
    }

    /// Where it is, for messages and records.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory as the kernel holds it open: a path to it that no
    /// later rename or link of its parents can redirect.
    pub fn held_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// A new file `name` in it, replacing one of ours (never one another
    /// user put there), created exclusively and never through a link.
    pub fn create_file(&self, name: &OsStr) -> io::Result<File> {
        self.clear(name, false)?;
        let fd = nix::fcntl::openat(
            &*self.fd,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o666),
        )
        .map_err(|e| self.error(name, e))?;
        Ok(File::from(fd))
    }

    /// A file of ours in it, opened to read, never through a link.
    pub fn open_file(&self, name: &OsStr) -> io::Result<File> {
        let fd = nix::fcntl::openat(
            &*self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.error(name, e))?;
        Ok(File::from(fd))
    }

    /// Removes `name` if it is a file of ours (what we wrote and are done with).
    pub fn remove_file(&self, name: &OsStr) {
        let _ = self.clear(name, false);
    }

    /// The directory `name` in it, made if missing, checked as this one.
    pub fn subdir(&self, name: &OsStr) -> Result<OwnDir, String> {
        let path = self.path.join(name);
        let shown = path.display();
        match nix::sys::stat::mkdirat(&*self.fd, name, Mode::from_bits_truncate(0o777)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(format!("{shown}: {e}")),
        }
        let fd = nix::fcntl::openat(
            &*self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => {
                format!("{shown}: not a directory (a link or a file is there)")
            }
            e => format!("{shown}: {e}"),
        })?;
        let stat = nix::sys::stat::fstat(&fd).map_err(|e| format!("{shown}: {e}"))?;
        check(&stat).map_err(|why| format!("{shown}: {why}"))?;
        // Ours alone: one another user made there (in /tmp) they could
        // rename things in under us.
        if stat.st_uid != nix::unistd::geteuid().as_raw() {
            return Err(format!(
                "{shown}: another user's directory, not ours to write in"
            ));
        }
        Ok(OwnDir {
            fd: Arc::new(fd),
            path,
        })
    }

    /// Removes what is at `name` if it is ours (a link of ours too, never
    /// what it leads to); what another user put there is an error.
    fn clear(&self, name: &OsStr, dir: bool) -> io::Result<()> {
        let stat = match nix::sys::stat::fstatat(&*self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(self.error(name, e)),
        };
        if stat.st_uid != nix::unistd::geteuid().as_raw() {
            return Err(io::Error::other(format!(
                "{}: is there and is another user's: not replaced",
                self.path.join(name).display()
            )));
        }
        let flag = match dir {
            true => UnlinkatFlags::RemoveDir,
            false => UnlinkatFlags::NoRemoveDir,
        };
        nix::unistd::unlinkat(&*self.fd, name, flag).map_err(|e| self.error(name, e))
    }

    fn error(&self, name: &OsStr, e: nix::errno::Errno) -> io::Error {
        io::Error::other(format!("{}: {e}", self.path.join(name).display()))
    }
}

/// Opening a directory (not a FIFO that would block, not a file).
trait DirectoryFlags {
    fn custom_flags_directory(&mut self) -> &mut Self;
}

impl DirectoryFlags for std::fs::OpenOptions {
    fn custom_flags_directory(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_CLOEXEC)
    }
}

/// Whether no one else can change the directory's entries.
fn check(stat: &FileStat) -> Result<(), String> {
    let mode = stat.st_mode;
    if SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) != SFlag::S_IFDIR {
        return Err("not a directory".into());
    }
    let sticky = mode & 0o1000 != 0;
    let ours = stat.st_uid == nix::unistd::geteuid().as_raw();
    let others_write =
        mode & 0o002 != 0 || (mode & 0o020 != 0 && !group_is_ours_alone(stat.st_gid));
    if others_write && !sticky {
        return Err(format!(
            "other users can write to it (mode {:04o}, no sticky bit): one could plant a link \
             where our output goes; use a directory only you can write to",
            mode & 0o7777
        ));
    }
    let roots_sticky = sticky && stat.st_uid == 0;
    if !(ours || roots_sticky) {
        return Err(format!(
            "not yours (owner uid {}): its owner could plant a link where our output goes; use a \
             directory of your own",
            stat.st_uid
        ));
    }
    Ok(())
}

/// A group that is the user's own private group (its name, no other
/// member), as most distributions give each user.
fn group_is_ours_alone(gid: u32) -> bool {
    let me = nix::unistd::geteuid();
    let Ok(Some(user)) = nix::unistd::User::from_uid(me) else {
        return false;
    };
    let Ok(Some(group)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) else {
        return false;
    };
    group.name == user.name && group.mem.iter().all(|m| *m == user.name) && user.gid.as_raw() == gid
}

/// A small regular file's bytes, read without ever blocking (a FIFO planted
/// under its name is refused at once, not waited on) nor reading past
/// `most`. The errors keep their kind (NotFound) and say what is wrong.
pub fn read_regular_file(path: &Path, most: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > most {
        return Err(io::Error::other(format!(
            "{} bytes, more than the {most} such a file may have",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(most + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > most {
        return Err(io::Error::other(format!(
            "grew past {most} bytes while read"
        )));
    }
    Ok(bytes)
}

/// The process's umask, as the kernel says it (reading it with umask(2)
/// would change it for every thread meanwhile).
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("baleine-own-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn a_planted_link_is_replaced_never_followed() {
        let dir = scratch("link");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("fit01.out")).unwrap();
        let out = OwnDir::open(&dir).unwrap();
        use std::io::Write;
        out.create_file(OsStr::new("fit01.out"))
            .unwrap()
            .write_all(b"output")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(dir.join("fit01.out")).unwrap(),
            "output"
        );
        // A link where a directory goes is refused, not followed.
        std::os::unix::fs::symlink(&dir, dir.join("fit02")).unwrap();
        let error = out.subdir(OsStr::new("fit02")).unwrap_err();
        assert!(error.contains("not a directory"), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_directory_others_can_write_to_is_refused() {
        let dir = scratch("shared");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = OwnDir::open(&dir).unwrap_err();
        assert!(
            error.contains("other users can write to it (mode 0777"),
            "{error}"
        );
        // Sticky, as /tmp: others cannot touch our entries there.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(OwnDir::open(&dir).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_directory_another_user_made_where_ours_goes_is_refused() {
        let dir = scratch("theirs");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let planted = dir.join("fit01");
        std::fs::create_dir(&planted).unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let stranger = nix::unistd::Uid::from_raw(65534);
        if nix::unistd::chown(&planted, Some(stranger), None).is_ok() {
            let out = OwnDir::open(&dir).unwrap();
            let error = out.subdir(OsStr::new("fit01")).unwrap_err();
            assert!(error.contains("not yours (owner uid 65534)"), "{error}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_umask_is_read_without_changing_it() {
        let before = umask();
        assert_eq!(umask(), before);
        assert_eq!(before & !0o777, 0);
    }
}
