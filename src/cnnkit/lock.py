"""One writer per run: an OS lock on a run's name, held while a process trains into that folder."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import RunLockedError


class RunLock:
    """An exclusive, non-blocking lock on a run name, held while a process writes that run.

    The lock file sits beside the run folder (``runs/.NAME.lock``) so it exists before the folder
    does and survives the swap of a staged ``--overwrite``. It is an OS lock (``flock``): a killed
    process releases it, so a stale file never blocks anyone.
    """

    def __init__(self, run_path: str | Path) -> None:
        p = Path(os.path.abspath(run_path))  # `--resume .` inside the run folder locks that folder by name
        self.path = p.parent / f".{p.name}.lock"
        self._fd: int | None = None
        self._made: list[Path] = []  # folders made only to hold the lock, deepest first

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; fall back to no lock rather than refusing to train
            return self
        # Remember which folders (e.g. a new --runs-dir) exist only for the lock: a run rejected before
        # its folder is made (bad data, bad model) must leave nothing behind.
        q = self.path.parent
        while not q.exists() and q.parent != q:
            self._made.append(q)
            q = q.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                os.close(fd)
                raise RunLockedError(
                    f"run {str(self.path.parent / self.path.name[1:-5])!r} is being written by another process"
                    + (f" (pid {holder})" if holder else ""),
                    hint="wait for it to finish, or use another --name",
                ) from None
            # The holder before us may have unlinked the file after we opened it: lock the file
            # that is at the path now, or two processes could each hold a lock on a different inode.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
        for d in self._made:  # only while empty: a run that was created keeps its folders
            try:
                d.rmdir()
            except OSError:
                break
        self._made = []

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
