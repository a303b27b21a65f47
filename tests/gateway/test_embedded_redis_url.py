"""Commands from another shell find the Redis that ``gateway up`` runs on their data directory."""

from __future__ import annotations

import json

from gateway.redis_server import EMBEDDED_REDIS_DIR, RUN_FILE, EmbeddedRedis, running_url


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
