//! Opening files beneath the media root with the kernel enforcing the symlink policy.
//!
//! What to open and how ([`open_request`], [`OPEN_FLAGS`]) and what to make of the result
//! ([`open_errno`], [`check_file_type`]) are plain logic, shared with the server, which opens
//! through IORING_OP_OPENAT2 and stats through IORING_OP_STATX. The synchronous
//! [`open_and_stat`] does the same on the calling thread, for tests and tools.
//!
//! This is the only module under `vod/` with `unsafe`: FFI calls (`openat2` through
//! `syscall`, `openat`, `statx` and `fcntl`) whose arguments are all owned locals.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use serde::Deserialize;

use super::FileMeta;

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

/// The open(2) flags of every VOD open: `O_RDONLY | O_CLOEXEC | O_NOCTTY` plus `O_NONBLOCK`
/// for the open itself only. `O_NONBLOCK` keeps a FIFO dropped into the media root from
/// blocking the opener in `open` (the worker thread, or an io-wq worker for a ring open), and
/// opening a device node cannot acquire a controlling terminal (`O_NOCTTY`). For a regular
/// file `O_NONBLOCK` is cleared again once its type is known: io_uring treats `O_NONBLOCK`
/// files as "never wait", so reads and splices could fail with `EAGAIN` on a page-cache miss
/// instead of being punted to io-wq.
pub const OPEN_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

/// The `statx` fields [`FileMeta::from_statx`] reads.
pub const STATX_MASK: u32 =
    libc::STATX_TYPE | libc::STATX_INO | libc::STATX_SIZE | libc::STATX_MTIME;

/// `openat2` gives `EAGAIN` when a concurrent rename or mount might have let resolution
/// escape (see openat2(2)); the answer is to retry. A few tries are plenty: a persistent
/// race means someone is attacking the root and failing is right.
pub const OPENAT2_RACE_RETRIES: usize = 4;

/// What to ask the kernel for to open `rel` beneath the media root: the path, the open flags
/// ([`OPEN_FLAGS`]) and the `RESOLVE_*` flags of an `openat2(2)` for the policy. Built in one
/// place, so the synchronous helpers here and the server's IORING_OP_OPENAT2 apply the same
/// rules.
#[derive(Debug)]
pub struct OpenRequest {
    pub path: CString,
    pub flags: libc::c_int,
    pub resolve: u64,
}

impl OpenRequest {
    /// `flags` as `open_how.flags`: a non-negative bit set, zero-extended.
    pub fn how_flags(&self) -> u64 {
        self.flags as u32 as u64
    }
}

/// The request that opens `rel` (from `normalise_vod_path`) for reading beneath the root
/// under `policy`.
///
/// Only plain names pass (`EINVAL` otherwise): an absolute `rel` would make openat ignore the
/// root entirely, and `..` must not depend on the policy to be stopped. `Deny` resolves with
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, `WithinRoot` with
/// `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, `Follow` with none (a plain openat). What the
/// open returns is still unchecked: see [`check_file_type`] and [`open_errno`].
pub fn open_request(rel: &Path, policy: SymlinkPolicy) -> io::Result<OpenRequest> {
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let path = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let resolve = match policy {
        SymlinkPolicy::Deny => {
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS
        }
        SymlinkPolicy::WithinRoot => libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        SymlinkPolicy::Follow => 0,
    };
    Ok(OpenRequest {
        path,
        flags: OPEN_FLAGS,
        resolve,
    })
}

/// The errno a failed VOD open stands for. open(2) of a unix socket (or of a device node with
/// no driver behind it) fails with `ENXIO`: it is a special file like a FIFO, refused the same
/// way (`EACCES`), not an internal error. Everything else is itself: `ENOENT` (no such file),
/// `ELOOP` (a symlink under `Deny`), `EXDEV` (a step outside the root under `WithinRoot`),
/// `EACCES`, `ENOSYS`/`EPERM` if the kernel (before 5.6) or a seccomp filter lacks `openat2`:
/// then `Deny` and `WithinRoot` fail closed rather than opening without the check.
pub fn open_errno(errno: i32) -> i32 {
    if errno == libc::ENXIO {
        libc::EACCES
    } else {
        errno
    }
}

/// Whether an opened file may be used: regular files and directories (the caller decides
/// what to do with a directory); anything else (FIFO, socket, device) is refused with
/// `EACCES`. Opening one had no effect beyond the open itself ([`OPEN_FLAGS`]).
pub fn check_file_type(meta: &FileMeta) -> io::Result<()> {
    if meta.is_file || meta.is_dir {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EACCES))
    }
}

/// Opens `rel` beneath `root` under `policy` on the calling thread, and stats the new fd once
/// (`statx`): the synchronous form of what the server does through the ring (tests and tools;
/// the server never blocks on it). Special files are refused ([`check_file_type`]); a regular
/// file has `O_NONBLOCK` cleared again.
pub fn open_and_stat(
    root: &File,
    rel: &Path,
    policy: SymlinkPolicy,
) -> io::Result<(File, FileMeta)> {
    let request = open_request(rel, policy)?;
    let fd = openat2_retrying(root, &request, policy).map_err(|e| {
        e.raw_os_error()
            .map_or(e, |errno| io::Error::from_raw_os_error(open_errno(errno)))
    })?;
    let file = File::from(fd);
    let meta = FileMeta::from_statx(&statx_fd(&file)?);
    check_file_type(&meta)?;
    if meta.is_file {
        clear_nonblock(&file)?;
    }
    Ok((file, meta))
}

/// Opens `rel` (from `normalise_vod_path`) for reading beneath `root` under `policy`: the file
/// of [`open_and_stat`].
pub fn open_beneath(root: &File, rel: &Path, policy: SymlinkPolicy) -> io::Result<File> {
    open_and_stat(root, rel, policy).map(|(file, _)| file)
}

/// One `statx` of the open file itself (`AT_EMPTY_PATH`) for [`STATX_MASK`].
pub(crate) fn statx_fd(file: &File) -> io::Result<libc::statx> {
    // SAFETY: statx is plain data; all-zero is a valid value.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a static NUL-terminated empty string, `buf` a valid statx the kernel
    // writes for the duration of the call, and `file` an open fd borrowed for the call.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_MASK,
            &mut buf,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf)
}

fn openat2_retrying(
    root: &File,
    request: &OpenRequest,
    policy: SymlinkPolicy,
) -> io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        let result = if policy == SymlinkPolicy::Follow {
            openat(root, &request.path, request.flags)
        } else {
            openat2(root, &request.path, request.how_flags(), request.resolve)
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

fn openat2(root: &File, path: &CString, flags: u64, resolve: u64) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags,
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
    fn requests_carry_the_policy_and_the_open_flags() {
        for (policy, resolve) in [
            (
                SymlinkPolicy::Deny,
                libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
            ),
            (
                SymlinkPolicy::WithinRoot,
                libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
            ),
            (SymlinkPolicy::Follow, 0),
        ] {
            let request = open_request(Path::new("sub/b.txt"), policy).unwrap();
            assert_eq!(request.resolve, resolve, "{policy:?}");
            assert_eq!(request.flags, OPEN_FLAGS);
            assert_eq!(request.path.as_bytes(), b"sub/b.txt");
            let nonblock = libc::O_NONBLOCK as u64;
            assert_eq!(request.how_flags() & nonblock, nonblock);
            assert_eq!(request.how_flags() >> 32, 0, "zero-extended");
            for bad in ["", "../x", "/etc/passwd", "a/../b", "./a", "a\0b"] {
                let error = open_request(Path::new(bad), policy).unwrap_err();
                assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "{bad:?}");
            }
        }
    }

    #[test]
    fn open_and_stat_stats_the_new_fd_once_and_refuses_special_files() {
        let l = layout();
        let (file, meta) =
            open_and_stat(&l.root, Path::new("sub/b.txt"), SymlinkPolicy::WithinRoot).unwrap();
        assert_eq!(meta, FileMeta::from_metadata(&file.metadata().unwrap()));
        assert_eq!(meta.size, 4);
        let fifo = std::fs::metadata(l._dir.path().join("media/fifo")).unwrap();
        assert!(fifo.file_type().is_fifo());
        let error = check_file_type(&FileMeta::from_metadata(&fifo)).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EACCES));
        let (_, dir) = open_and_stat(&l.root, Path::new("sub"), SymlinkPolicy::Deny).unwrap();
        assert!(check_file_type(&dir).is_ok() && dir.is_dir);
        assert_eq!(open_errno(libc::ENXIO), libc::EACCES);
        assert_eq!(open_errno(libc::ENOENT), libc::ENOENT);
        assert_eq!(open_errno(libc::EXDEV), libc::EXDEV);
    }

    #[test]
    fn a_statx_without_type_bits_is_refused() {
        // SAFETY: statx is plain data; all-zero is a valid value.
        let empty: libc::statx = unsafe { std::mem::zeroed() };
        let meta = FileMeta::from_statx(&empty);
        assert!(!meta.is_file && !meta.is_dir);
        assert_eq!(
            check_file_type(&meta).unwrap_err().raw_os_error(),
            Some(libc::EACCES)
        );
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
