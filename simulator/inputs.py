"""A user's file, opened the one way: it must exist, be a regular file (a directory is refused,
a named pipe would block), be readable and be no larger than the reader's limit, all checked
before a byte is read. Programs, trace files, hierarchy files and data files all come in here."""

from __future__ import annotations

import os
import stat
import tempfile

import numpy as np

from .errors import SimError


def check_file(path: str, what: str, max_bytes: int | None = None) -> int:
    """The file's size in bytes, or a SimError naming `path` and what is wrong with it."""
    if not path:
        raise SimError("the path is empty", what)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SimError(f"no such {what}", path) from None
    except ValueError:              # a NUL byte in the path
        raise SimError(f"a path cannot hold a NUL character; give a {what}",
                       path.replace("\0", "\\0")) from None
    except OSError as e:
        raise SimError(f"cannot read the {what}: {e.strerror}", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise SimError(f"this is a directory, not a {what}", path)
    if not stat.S_ISREG(st.st_mode):
        raise SimError(f"this is not a regular file (a pipe or a device?); give a {what}", path)
    if not os.access(path, os.R_OK):
        raise SimError(f"cannot read the {what}: permission denied", path)
    if max_bytes is not None and st.st_size > max_bytes:
        raise SimError(f"the {what} is {st.st_size:,} bytes; at most {max_bytes:,} are read",
                       path)
    return st.st_size


def read_bytes(path: str, what: str, max_bytes: int) -> bytes:
    """The whole file, checked by check_file first."""
    check_file(path, what, max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise SimError(f"cannot read the {what}: {e.strerror}", path) from None
    if len(data) > max_bytes:          # a file whose size the system does not say (/proc)
        raise SimError(f"the {what} is more than {max_bytes:,} bytes", path)
    return data


NPY_HEADER_MAX = 1 << 16


def npy_header(f) -> tuple[tuple, np.dtype]:
    """The shape and dtype an .npy stream's header declares, the stream left at its data.
    numpy parses the header as a Python literal, so any failure (a SyntaxError, a tokenizer
    error, a recursion) is a ValueError here."""
    try:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f, max_header_size=NPY_HEADER_MAX)
    except Exception as exc:
        raise ValueError(f"the .npy header is unreadable ({type(exc).__name__}: {exc})") from None
    return shape, dtype


def decode_utf8(data: bytes, what: str, path: str) -> str:
    """`data` as text, or a Utf8Error placed at the line and column of the first byte that is
    not UTF-8 (lines end at \\n, \\r\\n or \\r, as every reader here counts them)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[:e.start].decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise Utf8Error(f"the {what} is not UTF-8 text: byte 0x{data[e.start]:02x} cannot "
                        "start or continue a character here", f"{path}:{line}:{col}", line,
                        col) from None


class Utf8Error(SimError):
    """Not UTF-8, with the line and column of the first bad byte."""

    def __init__(self, message: str, where: str, line: int, col: int):
        super().__init__(message, where)
        self.line, self.col = line, col


def check_writable(path: str, where: str) -> str:
    """Where a user's output file will go (a link's target), checked before the work that
    makes it: a path, not a device, a pipe or a directory, in a folder that exists."""
    if not path.strip():
        raise SimError("give a file to write (got an empty path)", where)
    if "\0" in path:
        raise SimError(f"{path!r}: a path cannot hold a NUL byte", where)
    if len(os.fsencode(os.path.basename(path))) > 255:
        raise SimError(f"{path}: the file name is longer than 255 bytes", where)
    real = os.path.realpath(path)
    if os.path.lexists(real) and not stat.S_ISREG(os.stat(real).st_mode):
        raise SimError(f"{path} exists and is not a regular file; give a file to write", where)
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise SimError(f"{path}: the folder {folder} does not exist", where)
    if not os.access(folder, os.W_OK):
        raise SimError(f"cannot write into {folder}", where)
    return real


def write_file(path: str, text: str, where: str) -> None:
    """Write a user's output file whole or not at all: into a temporary file beside it, then
    moved over it. A symbolic link is written through (its target replaced), an existing
    file keeps its permissions, and anything that is not a regular file (a device, a pipe, a
    directory) is refused rather than replaced."""
    real = check_writable(path, where)
    mode = stat.S_IMODE(os.stat(real).st_mode) if os.path.lexists(real) else None
    folder = os.path.dirname(real)
    try:
        fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=folder)
    except OSError as e:
        raise SimError(f"cannot write into {folder}: {e.strerror}", where) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except OSError as e:
        os.unlink(tmp)
        raise SimError(f"cannot write {path}: {e.strerror}", where) from None
