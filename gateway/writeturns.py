"""Writers' turns at SQLite's one write lock, across threads and processes.

SQLite lets one transaction write at a time. A writer that finds the lock taken waits in
SQLite's busy handler, which does not queue: it sleeps 1, 2, 5, 10, ... up to 100 ms between
tries, so a writer that came first can keep missing the moment the lock is free while later
ones take it. Under a steady load (the API's group commits, two workers applying reports and
dispatching) that made the embedded default's slowest creates wait most of a second. Measured
on this machine class with six processes doing 3 ms write transactions: p99 wait 444 ms and
1.5 s at worst behind the busy handler; 43 and 58 ms taking turns at a blocking ``flock``.

So every :meth:`gateway.db.Database.write` on a file database first takes an exclusive
``flock`` of a file beside it (``<database>-writelock``): the kernel wakes a waiter as soon as
the holder lets go, and a holder that dies lets go with its file. Each thread has its own open
file (a ``flock`` belongs to an open file, so two threads sharing one would both "hold" it);
a forked child opens its own.

A wait is bounded like SQLite's busy timeout: ``flock`` cannot time out, so a writer that
finds the lock taken waits for it in a helper thread, and gives up after ``timeout`` seconds
with :class:`WriteTurnTimeout` (an outage to the API: 503). The helper then lets go of the
lock as soon as it gets it and closes that file; the thread opens a fresh one for its next
turn, so a late helper can never hold the lock on behalf of a later transaction.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path


class WriteTurnTimeout(Exception):
    """Another writer held the database's write lock longer than the timeout."""


class _Waiter:
    """One wait for the lock in a helper thread; abandoned when its writer gives up."""

    def __init__(self, fd: int):
        self.fd = fd
        self.got_it = threading.Event()
        self.abandoned = False
        self.lock = threading.Lock()
        threading.Thread(target=self._wait, name="write-turn", daemon=True).start()

    def _wait(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError:
            os.close(self.fd)
            return
        with self.lock:
            if not self.abandoned:
                self.got_it.set()
                return
        # The writer gave up waiting: let the next one have it, and retire this file.
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)

    def wait(self, timeout: float) -> bool:
        """Whether the lock was got within ``timeout``; if not, the wait is abandoned."""
        if self.got_it.wait(timeout):
            return True
        with self.lock:
            if self.got_it.is_set():
                return True
            self.abandoned = True
            return False


class WriteTurns:
    """The turns of one database file's writers (see the module docstring)."""

    def __init__(self, database_path: str | Path, timeout: float):
        self.path = f"{database_path}-writelock"
        self.timeout = timeout
        self._local = threading.local()

    def _file(self) -> int:
        """This thread's open lock file (a new one after a fork or an abandoned wait)."""
        pid = os.getpid()
        if getattr(self._local, "pid", None) != pid or self._local.fd is None:
            self._local.pid = pid
            self._local.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._local.fd

    @contextmanager
    def turn(self):
        """Hold the write lock for the block; :class:`WriteTurnTimeout` if it did not come."""
        fd = self._file()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiter = _Waiter(fd)
            try:
                got = waiter.wait(self.timeout)
            except BaseException:       # interrupted (a job's time limit): give the wait up
                got = waiter.wait(0)
                if got:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                else:
                    self._local.fd = None   # the helper closes it
                raise
            if not got:
                self._local.fd = None       # the helper closes it once it gets the lock
                raise WriteTurnTimeout(
                    f"the database's write lock was not free within {self.timeout:g} s") \
                    from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
