"""Every file lammps-phase writes goes through here: a temporary file beside the target, renamed into place.

So a run that fails or is interrupted never leaves a half-written file and never destroys the file that was
there before; a file appears under its name only once it is complete. Output paths are checked before any
work starts: an output may not be one of the run's inputs, a folder, a device or a file in a missing folder.

Use::

    check_output(out, inputs=[src, model], option="-o")   # before the (long) work
    with atomic_path(out) as tmp:                          # tmp keeps out's extension (matplotlib, numpy)
        np.savez_compressed(tmp, ...)
    with atomic_paths([a, b, c]) as (ta, tb, tc):          # several files: all renamed, or none
        ...
    write_text(path, text)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional, Sequence, Union

from lammps_phase.errors import LammpsPhaseError

PathLike = Union[str, os.PathLike]

__all__ = ["check_output", "same_file", "PendingFile", "atomic_path", "atomic_paths", "atomic_open", "write_text",
           "write_bytes", "copy_file"]


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file (links included); paths that do not exist compare resolved."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_output(path: PathLike, inputs: Sequence[Optional[PathLike]] = (), option: str = "output",
                 create_parent: bool = False) -> Path:
    """Refuse an output path that cannot be written safely; returns it as a Path.

    ``option`` names the path in messages ("-o", "output"), ``inputs`` are paths the run reads (None skipped).
    """
    if path is None or str(path).strip() == "":
        raise LammpsPhaseError(f"{option} is empty: give a file name")
    target = Path(path)
    if target.is_dir():
        raise LammpsPhaseError(f"{option} {target} is a folder: give a file name, e.g. {target / 'out.dump'}")
    if target.exists() and not target.is_file():
        raise LammpsPhaseError(f"{option} {target} exists and is not a regular file: give the path of a file")
    for source in inputs:
        if source is not None and str(source) and same_file(target, source):
            raise LammpsPhaseError(
                f"{option} {target} is also an input of this run ({source}): writing it would destroy the input; "
                f"choose another {option} path"
            )
    parent = target.parent
    if not parent.exists():
        if not create_parent:
            raise LammpsPhaseError(f"the folder of {option} {target} does not exist: create it (mkdir -p {parent}) "
                                   f"or choose another {option} path")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LammpsPhaseError(f"cannot create the folder {parent} for {option} {target}: {err.strerror}") from None
    elif not parent.is_dir():
        raise LammpsPhaseError(f"{option} {target}: {parent} is a file, not a folder; choose another {option} path")
    return target


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class PendingFile:
    """A temporary file beside ``target`` (same extension); :meth:`commit` renames it into place, :meth:`discard`
    removes it. As a context manager it yields the temporary path and commits only when the block succeeds."""

    def __init__(self, target: PathLike) -> None:
        self.target = Path(target)
        parent = self.target.parent
        if self.target.is_dir():
            raise LammpsPhaseError(f"{self.target} is a folder: give a file name")
        if self.target.exists() and not self.target.is_file():
            raise LammpsPhaseError(f"{self.target} exists and is not a regular file: give the path of a file")
        if not parent.is_dir():
            raise LammpsPhaseError(f"cannot write {self.target}: the folder {parent} does not exist")
        suffix = self.target.suffix if len(self.target.suffix) <= 16 else ""
        try:
            fd, name = tempfile.mkstemp(prefix=f".{self.target.name[:80]}.", suffix=f".tmp{suffix}", dir=parent)
        except OSError as err:
            raise LammpsPhaseError(f"cannot write in {parent}: {err.strerror}") from None
        os.close(fd)
        self.path = Path(name)
        self.done = False

    def commit(self) -> Path:
        if self.done:
            return self.target
        try:
            mode = stat.S_IMODE(self.target.stat().st_mode) if self.target.exists() else _default_mode()
            os.chmod(self.path, mode)
            os.replace(self.path, self.target)
        except OSError as err:
            self.discard()
            raise LammpsPhaseError(f"cannot write {self.target}: {err.strerror}") from None
        self.done = True
        return self.target

    def discard(self) -> None:
        if not self.done:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.done = True

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def atomic_path(target: PathLike) -> PendingFile:
    """``with atomic_path(p) as tmp:`` write tmp; it becomes p when the block ends without an exception."""
    return PendingFile(target)


@contextlib.contextmanager
def atomic_paths(targets: Sequence[PathLike]) -> Iterator[list[Path]]:
    """Temporary paths for several targets, renamed into place together once the block succeeded (else none)."""
    pending: list[PendingFile] = []
    try:
        for target in targets:
            pending.append(PendingFile(target))
        yield [p.path for p in pending]
    except BaseException:
        for p in pending:
            p.discard()
        raise
    for p in pending:
        p.commit()


@contextlib.contextmanager
def atomic_open(target: PathLike, mode: str = "w", encoding: Optional[str] = "utf-8") -> Iterator[IO]:
    """``open()`` for writing, through a temporary file that replaces ``target`` when the block succeeds."""
    if "b" in mode:
        encoding = None
    with atomic_path(target) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle


def write_text(target: PathLike, text: str, encoding: str = "utf-8") -> None:
    with atomic_open(target, "w", encoding=encoding) as handle:
        handle.write(text)


def write_bytes(target: PathLike, data: bytes) -> None:
    with atomic_open(target, "wb") as handle:
        handle.write(data)


def copy_file(source: PathLike, target: PathLike) -> None:
    if same_file(source, target):
        return
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
