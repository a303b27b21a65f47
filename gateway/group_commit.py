"""Group commit: writes that arrive together share one transaction, each caller still waiting
for the commit.

One commit per request made the create path pay, for every request, the transaction's
begin, the lock of the audit chain's head, the commit and (on SQLite) the write lock, while
most of its work was the same for all. Databases and log systems reach their speed the same
way: many writers, one flush. Here each process has one writer thread; a caller hands it a
*store* (a function that adds its rows to a session) and waits. The writer takes every store
waiting, up to ``max_batch``, runs them one after the other in one transaction, commits, runs
the after-commit steps (the enqueues) and only then wakes the callers with their results, so
"persist, then answer" holds for each of them: nothing is answered before it is durable, and a
crash before the commit answers none of the group.

Under light load the writer finds one store waiting and commits it at once: nothing waits for
a group to fill. Under load, stores queue while the writer commits, and the next group is
everything that queued meanwhile.

One bad store never fails its neighbours:

* a store that refuses (raises a :class:`gateway.errors.GatewayError` before adding anything,
  e.g. a reused Idempotency-Key) gets its refusal; the others go on in the same transaction;
* anything else (a refusal after it added rows, a unique key another process took at the same
  moment, a bug) rolls the group back, and each store runs again alone in its own
  transaction, as if it had come alone: only the one at fault fails.

A store may leave a rare refusal to a unique constraint while in a group, a group of one
included (:func:`in_group`): the group's commit then fails, and each store runs again alone,
where it checks first and refuses cleanly. Stores of one group are run one after the other in one
session, so a store can find what the earlier ones of its group added (intake keeps their
keys in ``session.info``).

The writer runs each store in a copy of its caller's context (``contextvars``): the
correlation id in logs and Flask's application context come along.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from .db import gathered_inserts, is_outage
from .errors import GatewayError

log = logging.getLogger(__name__)

#: a writer with nothing to do for this long ends its thread (the next store starts another)
IDLE_SECONDS = 5.0
#: ``session.info`` key set while a group of several stores shares the session
IN_GROUP = "group_commit"


def in_group(session: Session) -> bool:
    """Whether ``session`` is a group's (of one or more stores: a first try): a store may
    then leave a rare refusal to a unique constraint (the group is rolled back and each store
    runs again alone, where it may look first) instead of a query per store."""
    return bool(session.info.get(IN_GROUP))


@dataclass(eq=False)
class _Store:
    work: Callable[[Session], Any]
    context: contextvars.Context
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class _Rollback(Exception):
    """The group cannot commit as a whole; its stores run again one by one."""


def _written(session: Session) -> int:
    """What the session's transaction will write so far: new objects and gathered rows."""
    return len(session.new) + gathered_inserts(session)


class GroupWriter:
    """The writer thread of one process for one database.

    :param write: the database's write unit of work (:meth:`gateway.db.Database.write`)
    :param max_batch: the most stores in one transaction; 1: each caller commits its own, in
        its own thread, as without a writer
    :param observe: told ``(outcome, size)`` of each group: ``together`` (one transaction),
        ``alone`` (rolled back, then each store in its own), ``failed`` (the database was
        away: each store got that error, none ran again)
    """

    def __init__(self, write: Callable, max_batch: int = 64,
                 observe: Callable[[str, int], None] | None = None):
        self._write = write
        self.max_batch = max_batch
        self._observe = observe or (lambda outcome, size: None)
        self._reset()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (writer := ref()) and writer._reset())

    def _reset(self) -> None:
        # A forked child has no writer thread, and a lock or queue of its parent's threads
        # would never be released there.
        self._lock = threading.Lock()
        self._waiting: queue.SimpleQueue[_Store] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, work: Callable[[Session], Any]) -> Any:
        """Run ``work(session)`` in the next group's transaction; return what it returned
        once that transaction has committed, or raise what it raised."""
        if self.max_batch <= 1 or threading.current_thread() is self._thread:
            with self._write() as session:
                return work(session)
        store = _Store(work, contextvars.copy_context())
        with self._lock:
            self._waiting.put(store)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="group-writer",
                                                daemon=True)
                self._thread.start()
        store.done.wait()
        if store.error is not None:
            raise store.error
        return store.result

    def _serve(self) -> None:
        while True:
            try:
                group = [self._waiting.get(timeout=IDLE_SECONDS)]
            except queue.Empty:
                with self._lock:
                    if self._waiting.empty():
                        self._thread = None
                        return
                continue
            while len(group) < self.max_batch:
                try:
                    group.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                self._commit(group)
            except BaseException as exc:   # never leave a caller waiting for ever
                for store in group:
                    if store.result is None and store.error is None:
                        store.error = exc
            finally:
                for store in group:
                    store.done.set()

    def _commit(self, group: list[_Store]) -> None:
        # A group of one too: its first try may leave a rare refusal to a unique constraint
        # (``in_group``) and runs again alone, checking first, only if that fails.
        try:
            self._together(group)
        except Exception as exc:
            if is_outage(exc):
                # The database is away: alone, each would wait out the same timeout.
                for store in group:
                    store.result, store.error = None, exc
                self._tell("failed", len(group))
                return
            log.info("a group of %d stores rolled back (%s); each runs alone",
                     len(group), type(exc).__name__)
            for store in group:
                store.result = store.error = None
        else:
            self._tell("together", len(group))
            return
        for store in group:
            self._alone(store)
        self._tell("alone", len(group))

    def _tell(self, outcome: str, size: int) -> None:
        try:
            self._observe(outcome, size)
        except Exception as exc:   # a metric must never undo or repeat a commit
            log.warning("group commit not counted: %s", type(exc).__name__)

    def _together(self, group: list[_Store]) -> None:
        with self._write() as session:
            session.info[IN_GROUP] = True
            for store in group:
                added = _written(session)
                try:
                    store.result = store.context.run(store.work, session)
                except GatewayError as exc:
                    if _written(session) != added:
                        raise _Rollback from exc
                    store.error = exc

    def _alone(self, store: _Store) -> None:
        try:
            with self._write() as session:
                store.result = store.context.run(store.work, session)
        except Exception as exc:
            store.result, store.error = None, exc
