"""The one way Cygnet reads a file a user or a connection names: bounded and regular only.

A profile, a .sswan file, NetworkManager's vpn.data (read by the root service) and the
certificates and keys they name are untrusted input: ``ca = "/dev/zero"`` or a FIFO must be
refused, not read until memory runs out or blocking forever. It lives here, below client/ and
nm_plugin/, because ike.certificates loads certificates and keys from files too.
"""
from __future__ import annotations

import os
import stat
from typing import Union

# Far above any real certificate chain, key, profile or .sswan (a PKCS#12 bundle is a few KB);
# the system CA bundle is about 200 KB.
MAX_FILE_SIZE = 4 * 1024 * 1024


class FileRefused(Exception):
    """A named file cannot or must not be read; the message names the file and why,
    `.problem` says only why ("does not exist", "is not a regular file", ...)."""

    def __init__(self, message: str, problem: str):
        super().__init__(message)
        self.problem = problem


def _refuse(what: str, path, problem: str) -> FileRefused:
    return FileRefused(f"{what} {path} {problem}", problem)


def read_bounded(path: Union[str, os.PathLike], what: str = "file", limit: int = MAX_FILE_SIZE,
                 private: bool = False) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them.

    With `private`, the file must not be readable or writable by group or others (secrets and
    private keys: ``chmod 600``). Type, mode and size are checked on the opened file, so a swap
    after the check cannot slip through. Messages read "<what> <path> <problem>"."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _refuse(what, path, "does not exist") from None
    except OSError as e:
        raise _refuse(what, path, f"cannot be read: {e.strerror}") from None
    except ValueError:  # a NUL byte in the name
        raise _refuse(what, repr(str(path)), "is not a valid file name") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(what, path, "is not a regular file")
        if private and st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise _refuse(what, path, f"is accessible by group or others (mode {mode:04o}); "
                                          f"run: chmod 600 {path}")
        if st.st_size > limit:
            raise _refuse(what, path, f"is too large ({st.st_size} bytes; at most {limit})")
        chunks, total = [], 0
        while chunk := os.read(fd, min(65536, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew since fstat
                raise _refuse(what, path, f"is too large (more than {limit} bytes)")
        return b"".join(chunks)
    except OSError as e:
        raise _refuse(what, path, f"cannot be read: {e.strerror}") from None
    finally:
        os.close(fd)
