"""Every file fastbp writes goes through one atomic writer; every file it reads is opened
as a regular file first. Nothing about a path is trusted.

Writing (checkpoints, `fastbp bench --json`, plots): the bytes go to a new temporary file
in the target's folder (a random name, created with O_EXCL and O_NOFOLLOW, so nothing
planted there is followed or reused), are fsynced, and the temporary file is renamed over
the target; the folder is fsynced too. A process killed mid-write leaves the old file
intact. The target must be absent, a regular file (its permission bits are kept), or a
symbolic link to one, which is replaced by the file (never written through: a link
planted at the target cannot redirect the write). FIFOs, devices, sockets, folders, and
the files a command reads (`--data`) are refused with a ValueError naming the path.

Reading: `open_regular` opens without blocking (a FIFO would otherwise wait for a writer
for ever) and refuses anything but a regular file (a FIFO, /dev/zero, a folder).
"""
import os
import secrets
import socket
import stat

_TMP_PREFIX = f".fastbp-{socket.gethostname()}-"       # + pid + random + ".tmp"
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode):
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_target(path, what="output", inputs=(), probe=False):
    """ValueError naming `path` unless a file can be written there: its folder exists, and it
    is absent, a regular file, or a symbolic link to one (or dangling), and it is none of the
    files in `inputs` (paths the same command reads or writes). With `probe`, also create and remove a
    temporary file in the folder (an OSError naming `path` where that is refused), so that a
    command learns before its work, not after, that it cannot write its output.
    -> the mode bits to give the new file (those of the regular file it replaces), or None."""
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{what}: the path is empty")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{what}: cannot write {path}: the folder {folder} does not exist")
    for source in inputs:
        if source is not None and _same_file(path, source):
            raise ValueError(f"{what}: {path} is the file {source} the same command reads or writes; "
                             f"writing it would destroy that file")
    if probe:
        _probe(folder, path)
    try:
        own = os.lstat(path)
    except FileNotFoundError:
        return None
    try:
        target = os.stat(path)
    except FileNotFoundError:           # a dangling link: replaced by the file
        target = None
    if target is not None and not stat.S_ISREG(target.st_mode):
        via = " (through a symbolic link)" if stat.S_ISLNK(own.st_mode) else ""
        raise ValueError(f"{what}: {path} is {_kind(target.st_mode)}{via}; fastbp writes regular files only")
    return stat.S_IMODE(own.st_mode) if stat.S_ISREG(own.st_mode) else None


def _same_file(a, b):
    """The same path (as resolved), or two names (links) of one existing file."""
    if os.path.realpath(a) == os.path.realpath(os.fspath(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _probe(folder, path):
    fd, tmp = _create_temporary(folder, path)
    os.close(fd)
    os.unlink(tmp)


def write_atomically(path, write, what="output", inputs=()):
    """Call write(f) with a binary file object, then put what it wrote at `path` atomically
    (see the module docstring). On any error the target is as it was and no temporary file
    remains; a folder that cannot be written is an OSError naming `path`."""
    path = os.fspath(path)
    mode = check_target(path, what, inputs)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temporary(folder, path)
    try:
        if mode is not None:
            os.chmod(fd if os.chmod in os.supports_fd else tmp, mode)      # re-saving keeps the file's mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def _create_temporary(folder, path):
    """-> (fd, path) of a new file in `folder`, mode 0666 less the umask as for any new file
    (the kernel applies the umask: no os.umask round trip, which is process-wide and would
    race with other threads creating files). The name carries host and pid, so that the
    leftovers of writes killed midway can be recognised and removed later; its random part
    makes it unpredictable, and O_EXCL | O_NOFOLLOW refuse anything already there."""
    _remove_leftovers(folder)
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0))
    while True:
        tmp = os.path.join(folder, f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as e:            # name the user's path, not the temporary file
            error = type(e)(f"cannot write {path}: {e.strerror} (creating a file in {folder} was refused)")
            error.errno = e.errno
            raise error from None


def _remove_leftovers(folder):
    """Delete temporary files of this host's writes whose process is gone (killed mid-write)."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(_TMP_PREFIX) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        try:
            pid = int(name[len(_TMP_PREFIX):].split("-")[0])
            os.kill(pid, 0)                      # raises if no such process
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
        except (ValueError, PermissionError, OSError):
            pass                                 # not ours to judge: leave it


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_regular(path):
    """-> (binary file object, size in bytes) of the regular file at `path`. A FIFO, a device,
    a socket or a folder is a ValueError saying what it is (callers name the path), found
    without blocking; a missing file is FileNotFoundError."""
    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"it is {_kind(info.st_mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise
