"""Writers take turns at SQLite's write lock (``gateway.writeturns``): across threads and
processes, one at a time, the lock let go when its holder dies, a wait bounded like the busy
timeout (and answered 503 by the API), a given-up wait never keeping the lock."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import threading
import time

import pytest
from sqlalchemy import func, select, text

from gateway.db import Database
from gateway.models import ServiceRequest
from gateway.writeturns import WriteTurns, WriteTurnTimeout
from tests.conftest import bearer

PATH = "/api/v1/services/medicine_delivery/requests"


def lock_is_free(path) -> bool:
    """Whether another open file could take the lock now (and lets go of it at once)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def wait_until(condition, seconds=10.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def _hold_a_write(url: str, holding, seconds: float) -> None:
    """In another process: a write transaction that stays open ``seconds``."""
    database = Database(url)
    with database.write() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS held (n INTEGER)"))
        holding.set()
        time.sleep(seconds)


@pytest.fixture
def sqlite_file(tmp_path):
    return f"sqlite:///{tmp_path / 'turns.db'}"


def test_a_write_in_another_process_holds_the_turn_until_it_dies(sqlite_file):
    """A writer killed in the middle of its transaction lets the others in at once (the
    kernel drops its lock with its files), not after the busy timeout."""
    context = multiprocessing.get_context("fork")
    holding = context.Event()
    holder = context.Process(target=_hold_a_write, args=(sqlite_file, holding, 60))
    holder.start()
    try:
        assert holding.wait(20)
        database = Database(sqlite_file)
        assert not lock_is_free(database.turns.path)

        done = threading.Event()

        def write():
            with database.write() as session:
                session.execute(text("CREATE TABLE written (n INTEGER)"))
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.5), "a second writer got in while the first held the lock"
        os.kill(holder.pid, signal.SIGKILL)
        # well before SQLite's busy timeout (10 s) would have let it try again
        assert done.wait(5)
        writer.join()
    finally:
        holder.kill()
        holder.join()


def test_threads_of_one_process_take_turns(sqlite_file):
    """Each thread has its own lock file: two threads never hold the turn together."""
    turns = WriteTurns(sqlite_file.removeprefix("sqlite:///"), timeout=10)
    inside, overlaps = [], []

    def work():
        for _ in range(20):
            with turns.turn():
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def test_a_wait_past_the_timeout_gives_up_and_never_keeps_the_lock(tmp_path):
    path = tmp_path / "x.db"
    holder, waiter = WriteTurns(path, timeout=10), WriteTurns(path, timeout=0.2)
    release, held = threading.Event(), threading.Event()

    def hold():
        with holder.turn():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    with pytest.raises(WriteTurnTimeout), waiter.turn():
        pass
    release.set()
    thread.join()
    # the given-up wait got the lock after the holder left, and let go of it at once
    assert wait_until(lambda: lock_is_free(waiter.path))
    with waiter.turn():             # and this thread's next turn works
        assert not lock_is_free(waiter.path)
    assert lock_is_free(waiter.path)


def test_a_create_that_cannot_get_its_turn_is_answered_503_and_stores_nothing(
        app, gateway, client, agency, medicine_body):
    if gateway.db.turns is None:
        pytest.skip("PostgreSQL: no write turns")
    gateway.db.turns.timeout = 0.3
    fd = os.open(gateway.db.turns.path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)         # another process's writer, holding on
    try:
        response = client.post(PATH, json=medicine_body, headers=bearer(agency.key))
    finally:
        os.close(fd)
    assert response.status_code == 503
    assert response.json["code"] == "service_unavailable"
    with gateway.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ServiceRequest)) == 0
    # and once the lock is free again, the same request goes through
    response = client.post(PATH, json=medicine_body, headers=bearer(agency.key))
    assert response.status_code == 202, response.json


def test_only_a_file_database_takes_turns(tmp_path):
    assert Database("sqlite://").turns is None
    assert Database(f"sqlite:///{tmp_path / 'a.db'}").turns is not None
