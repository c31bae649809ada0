//! Opening files beneath the media root with the kernel enforcing the symlink policy.
//!
//! This is the only module under `vod/` with `unsafe`: two FFI calls (`openat2` through
//! `syscall`, and `fcntl`) whose arguments are all owned locals.

use std::ffi::CString;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use serde::Deserialize;

/// What a symlink under the media root may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SymlinkPolicy {
    /// No symlinks anywhere on the path (`RESOLVE_NO_SYMLINKS`).
    Deny,
    /// Symlinks are fine while every step stays beneath the root (`RESOLVE_BENEATH`;
    /// absolute symlinks are refused too). The default: it allows the usual "link a
    /// season folder into place" layouts without letting a link reach `/etc`.
    #[default]
    WithinRoot,
    /// Follow anything (plain `openat`). For roots whose links deliberately point at
    /// other disks; the path itself still cannot contain `..`.
    Follow,
}

/// Opens the media root as an `O_PATH` directory handle, the anchor every `open_beneath`
/// resolves from. `O_PATH` needs no read permission on the directory and cannot be used
/// to read it by accident.
pub fn open_root(dir: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
}

/// Opens `rel` (from `normalise_vod_path`) for reading beneath `root` under `policy`.
///
/// Flags: `O_RDONLY | O_CLOEXEC | O_NOCTTY` plus `O_NONBLOCK` for the open itself only.
/// `O_NONBLOCK` keeps a FIFO dropped into the media root from blocking the worker thread in
/// `open`, and opening a device node cannot acquire a controlling terminal (`O_NOCTTY`).
/// Anything that is not a regular file or directory is refused with `EACCES` (a unix socket,
/// whose open fails with `ENXIO`, included). For a
/// regular file `O_NONBLOCK` is then cleared again: io_uring treats `O_NONBLOCK` files as
/// "never wait", so reads and splices could fail with `EAGAIN` on a page-cache miss
/// instead of being punted to io-wq.
///
/// Errors are plain errno values: `ENOENT` (no such file), `ELOOP` (a symlink under
/// `Deny`), `EXDEV` (a step outside the root under `WithinRoot`), `EACCES`,
/// `ENOSYS`/`EPERM` if the kernel (before 5.6) or a seccomp filter lacks `openat2`: then
/// `Deny` and `WithinRoot` fail closed rather than opening without the check.
pub fn open_beneath(root: &File, rel: &Path, policy: SymlinkPolicy) -> io::Result<File> {
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
    let fd = openat2_retrying(root, rel, flags, policy).map_err(|e| {
        // open(2) of a unix socket (or of a device node with no driver behind it) fails
        // with ENXIO: it is a special file like a FIFO, refused the same way, not an
        // internal error.
        if e.raw_os_error() == Some(libc::ENXIO) {
            io::Error::from_raw_os_error(libc::EACCES)
        } else {
            e
        }
    })?;
    let file = File::from(fd);
    let file_type = file.metadata()?.file_type();
    if file_type.is_file() {
        clear_nonblock(&file)?;
    } else if !file_type.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    Ok(file)
}

/// Stats `rel` beneath `root` under the same policy as [`open_beneath`], through an
/// `O_PATH` handle: no FIFO or device open side effects and no read permission needed.
/// The file cache uses it to revalidate an entry without reopening the file.
pub(crate) fn stat_beneath(root: &File, rel: &Path, policy: SymlinkPolicy) -> io::Result<Metadata> {
    let fd = openat2_retrying(root, rel, libc::O_PATH | libc::O_CLOEXEC, policy)?;
    File::from(fd).metadata()
}

/// `openat2` gives `EAGAIN` when a concurrent rename or mount might have let resolution
/// escape (see openat2(2)); the answer is to retry. A few tries are plenty: a persistent
/// race means someone is attacking the root and failing is right.
const OPENAT2_RACE_RETRIES: usize = 4;

fn openat2_retrying(
    root: &File,
    rel: &Path,
    flags: libc::c_int,
    policy: SymlinkPolicy,
) -> io::Result<OwnedFd> {
    // Only plain names: an absolute `rel` would make openat ignore the root entirely, and
    // `..` must not depend on the policy to be stopped.
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let c_path = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let resolve = match policy {
        SymlinkPolicy::Deny => {
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS
        }
        SymlinkPolicy::WithinRoot => libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        SymlinkPolicy::Follow => 0,
    };
    let mut tries = 0;
    loop {
        let result = if policy == SymlinkPolicy::Follow {
            openat(root, &c_path, flags)
        } else {
            openat2(root, &c_path, flags, resolve)
        };
        match result {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < OPENAT2_RACE_RETRIES => {
                tries += 1;
            }
            other => return other,
        }
    }
}

/// `struct open_how` from linux/openat2.h. libc's version is `#[non_exhaustive]`, so it
/// cannot be built with a literal; this one has the same layout (three `u64`s, the
/// `OPEN_HOW_SIZE_VER0` the kernel accepts on every version with `openat2`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2(root: &File, path: &CString, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    let how = OpenHow {
        // Flags are a non-negative bit set; the kernel wants them zero-extended.
        flags: flags as u32 as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: `path` is a valid NUL-terminated string and `how` a properly laid-out
    // `open_how`, both alive for the duration of the call; the kernel only reads them. The
    // size passed is the exact size of `how`. `root` is a valid open fd borrowed for the
    // call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat(root: &File, path: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a valid NUL-terminated string alive for the call; `root` is a valid
    // open fd borrowed for the call. No mode argument is read without O_CREAT.
    let fd = unsafe { libc::openat(root.as_raw_fd(), path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn clear_nonblock(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL on an fd we own; no pointers involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFL with an int argument on an fd we own; no pointers involved.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vod::test_dir::TestDir;
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, symlink};

    struct Layout {
        _dir: TestDir,
        root: File,
    }

    /// dir/
    ///   outside.txt            "secret"
    ///   media/                 (the root)
    ///     a.txt                "inside"
    ///     sub/b.txt            "deep"
    ///     link_in  -> a.txt
    ///     link_sub -> sub      (directory link inside the root)
    ///     link_out -> ../outside.txt
    ///     link_abs -> /abs/path/of/outside.txt
    ///     fifo                 (a FIFO)
    fn layout() -> Layout {
        let dir = TestDir::new("open");
        let media = dir.path().join("media");
        std::fs::create_dir_all(media.join("sub")).unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        std::fs::write(media.join("a.txt"), "inside").unwrap();
        std::fs::write(media.join("sub/b.txt"), "deep").unwrap();
        symlink("a.txt", media.join("link_in")).unwrap();
        symlink("sub", media.join("link_sub")).unwrap();
        symlink("../outside.txt", media.join("link_out")).unwrap();
        symlink(dir.path().join("outside.txt"), media.join("link_abs")).unwrap();
        let fifo = CString::new(media.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path alive for the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let root = open_root(&media).unwrap();
        Layout { _dir: dir, root }
    }

    fn read(layout: &Layout, rel: &str, policy: SymlinkPolicy) -> io::Result<String> {
        let mut file = open_beneath(&layout.root, Path::new(rel), policy)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(text)
    }

    fn errno(result: io::Result<String>) -> i32 {
        result.unwrap_err().raw_os_error().unwrap()
    }

    #[test]
    fn files_inside_open_under_every_policy() {
        let l = layout();
        for policy in [
            SymlinkPolicy::Deny,
            SymlinkPolicy::WithinRoot,
            SymlinkPolicy::Follow,
        ] {
            assert_eq!(read(&l, "a.txt", policy).unwrap(), "inside");
            assert_eq!(read(&l, "sub/b.txt", policy).unwrap(), "deep");
            assert_eq!(errno(read(&l, "missing.txt", policy)), libc::ENOENT);
        }
    }

    #[test]
    fn symlinks_inside_the_root() {
        let l = layout();
        assert_eq!(errno(read(&l, "link_in", SymlinkPolicy::Deny)), libc::ELOOP);
        assert_eq!(
            errno(read(&l, "link_sub/b.txt", SymlinkPolicy::Deny)),
            libc::ELOOP
        );
        assert_eq!(
            read(&l, "link_in", SymlinkPolicy::WithinRoot).unwrap(),
            "inside"
        );
        assert_eq!(
            read(&l, "link_sub/b.txt", SymlinkPolicy::WithinRoot).unwrap(),
            "deep"
        );
        assert_eq!(
            read(&l, "link_in", SymlinkPolicy::Follow).unwrap(),
            "inside"
        );
    }

    #[test]
    fn symlinks_out_of_the_root() {
        let l = layout();
        assert_eq!(
            errno(read(&l, "link_out", SymlinkPolicy::Deny)),
            libc::ELOOP
        );
        assert_eq!(
            errno(read(&l, "link_out", SymlinkPolicy::WithinRoot)),
            libc::EXDEV
        );
        assert_eq!(
            errno(read(&l, "link_abs", SymlinkPolicy::WithinRoot)),
            libc::EXDEV
        );
        assert_eq!(
            read(&l, "link_out", SymlinkPolicy::Follow).unwrap(),
            "secret"
        );
        assert_eq!(
            read(&l, "link_abs", SymlinkPolicy::Follow).unwrap(),
            "secret"
        );
    }

    #[test]
    fn dot_dot_and_absolute_paths_never_resolve() {
        let l = layout();
        for policy in [
            SymlinkPolicy::Deny,
            SymlinkPolicy::WithinRoot,
            SymlinkPolicy::Follow,
        ] {
            for rel in [
                "../outside.txt",
                "sub/../../outside.txt",
                "/etc/passwd",
                "",
                "./a.txt",
            ] {
                let result = open_beneath(&l.root, Path::new(rel), policy);
                assert_eq!(
                    result.unwrap_err().raw_os_error(),
                    Some(libc::EINVAL),
                    "{rel:?} {policy:?}"
                );
            }
        }
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let l = layout();
        // Opening a FIFO for reading would block forever without O_NONBLOCK.
        assert_eq!(
            errno(read(&l, "fifo", SymlinkPolicy::WithinRoot)),
            libc::EACCES
        );
        // A unix socket cannot be opened at all (ENXIO): refused the same way.
        let _listener =
            std::os::unix::net::UnixListener::bind(l._dir.path().join("media/sock")).unwrap();
        assert_eq!(
            errno(read(&l, "sock", SymlinkPolicy::WithinRoot)),
            libc::EACCES
        );
        // Directories open (the caller decides what to do with them).
        let dir = open_beneath(&l.root, Path::new("sub"), SymlinkPolicy::WithinRoot).unwrap();
        assert!(dir.metadata().unwrap().is_dir());
    }

    #[test]
    fn regular_files_are_left_blocking() {
        let l = layout();
        let file = open_beneath(&l.root, Path::new("a.txt"), SymlinkPolicy::WithinRoot).unwrap();
        // SAFETY: F_GETFL on an fd owned by `file`.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0);
        assert_eq!(flags & libc::O_ACCMODE, libc::O_RDONLY);
        // SAFETY: F_GETFD on an fd owned by `file`.
        let fd_flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn stat_beneath_follows_the_same_policy() {
        let l = layout();
        let meta = stat_beneath(&l.root, Path::new("a.txt"), SymlinkPolicy::Deny).unwrap();
        assert_eq!(meta.len(), 6);
        let e =
            stat_beneath(&l.root, Path::new("link_out"), SymlinkPolicy::WithinRoot).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
        let meta = stat_beneath(&l.root, Path::new("fifo"), SymlinkPolicy::WithinRoot).unwrap();
        assert!(meta.file_type().is_fifo());
    }

    #[test]
    fn policy_deserialises_from_snake_case() {
        #[derive(Deserialize)]
        struct Config {
            symlinks: SymlinkPolicy,
        }
        for (text, policy) in [
            ("deny", SymlinkPolicy::Deny),
            ("within_root", SymlinkPolicy::WithinRoot),
            ("follow", SymlinkPolicy::Follow),
        ] {
            let config: Config = toml::from_str(&format!("symlinks = \"{text}\"")).unwrap();
            assert_eq!(config.symlinks, policy);
        }
        assert!(toml::from_str::<Config>("symlinks = \"WithinRoot\"").is_err());
        assert_eq!(SymlinkPolicy::default(), SymlinkPolicy::WithinRoot);
    }
}
