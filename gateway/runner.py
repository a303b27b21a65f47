"""``gateway up``: the whole gateway on one machine, started and stopped as one.

Order of start: schema migrations (once, before anything forks), the demo agency, a private
Redis when none is configured, the API server, the courier simulators of sandbox entries
that point at this machine (their webhooks go to the API), the workers. Order of stop, on
SIGTERM or SIGINT or when any part dies: the reverse. The parent owns every child, so
nothing is left running after it exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from .agencies import AgencyError, create_agency
from .console.users import AdminUserError, create_admin, list_admins
from .keys import parse_key
from .migrate import upgrade
from .models import ApiKey
from .redis_server import EMBEDDED_REDIS_DIR, EmbeddedRedis


def ensure_demo_agency(gateway) -> str | None:
    """Create the demo agency with its documented test key, once. :return: the demo key."""
    demo = gateway.settings["demo"]
    if not demo["enabled"] or not demo["api_key"]:
        return None
    if gateway.settings["mode"] != "sandbox":
        print("demo agency skipped: mode is not sandbox", file=sys.stderr)
        return None
    parsed = parse_key(demo["api_key"])
    if not parsed or parsed[1] != "test":
        print("demo agency skipped: demo.api_key is not a well-formed test key", file=sys.stderr)
        return None
    with gateway.db.read() as session:
        exists = session.execute(select(ApiKey).where(ApiKey.prefix == parsed[0])
                                 ).scalar_one_or_none()
    if exists is None:
        services = [s for s in demo["services"] if s in gateway.services]
        try:
            create_agency(gateway, demo["agency_name"], services, actor="gateway-up",
                          key_type="test", api_key=demo["api_key"])
        except AgencyError as exc:
            print(f"demo agency skipped: {exc}", file=sys.stderr)
            return None
    return demo["api_key"]


def ensure_demo_admin(gateway) -> str | None:
    """Create the demo console admin with its documented password, once (sandbox only).

    :return: the username, or None when there is no demo admin
    """
    demo = gateway.settings["demo"]
    username, password = demo["admin_username"], demo["admin_password"]
    if not demo["enabled"] or not username or not password:
        return None
    if gateway.settings["mode"] != "sandbox":
        print("demo admin skipped: mode is not sandbox", file=sys.stderr)
        return None
    if not any(user.username == username for user in list_admins(gateway)):
        try:
            create_admin(gateway, username, password, "admin", actor="gateway-up")
        except AdminUserError as exc:
            print(f"demo admin skipped: {exc}", file=sys.stderr)
            return None
    return username


def local_simulators(gateway) -> list[str]:
    """Sandbox entries of adapters with a simulator whose base_url is on this machine:
    ``gateway up`` serves them."""
    return [name for name, config in gateway.courier_configs.items()
            if config["enabled"] and config["sandbox"]
            and gateway.courier_classes[config["adapter"]].simulator
            and urlsplit(config.get("base_url", "")).hostname in ("127.0.0.1", "localhost")]


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(url, timeout=1).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def run_all_in_one(app, *, workers: int = 1, web_workers: int = 2) -> int:
    gateway = app.extensions["gateway"]
    settings = gateway.settings
    upgrade(gateway.db)
    demo_key = ensure_demo_agency(gateway)
    demo_admin = ensure_demo_admin(gateway)
    env = dict(os.environ)
    redis = None
    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    children: list[tuple[str, subprocess.Popen]] = []
    exit_code = 0
    try:
        if not settings["redis_url"]:
            redis = EmbeddedRedis(Path(settings["data_dir"]) / EMBEDDED_REDIS_DIR)
            env["GATEWAY_REDIS_URL"] = redis.start()
            print(f"redis: embedded, {env['GATEWAY_REDIS_URL']}", flush=True)
        command = [sys.executable, "-m", "gateway"]
        base = f"http://{settings['host']}:{settings['port']}"
        children.append(("api", subprocess.Popen(
            [*command, "serve", "--workers", str(web_workers)], env=env)))
        healthy = _wait_healthy(f"{base}/healthz", children[0][1])
        for name in local_simulators(gateway):
            simulator = subprocess.Popen(
                [*command, "simulator", "run", name,
                 "--webhook-url", f"{base}/webhooks/{name}"], env=env)
            children.append((f"simulator-{name}", simulator))
            # Workers start only once the simulator answers, so no booking meets a closed port.
            _wait_healthy(f"{gateway.courier_configs[name]['base_url']}/_sim/bookings",
                          simulator)
        children.extend((f"worker-{i + 1}", subprocess.Popen([*command, "worker"], env=env))
                        for i in range(workers))
        if healthy:
            print(f"\nThe gateway is up at {base}  (API docs: {base}/api/docs)", flush=True)
            if demo_key:
                print(f"Demo agency key (test key, sandbox couriers only): {demo_key}\n"
                      f"Try: curl -H 'Authorization: Bearer {demo_key}' "
                      f"{base}/api/v1/services", flush=True)
            if demo_admin:
                print(f"Console: {base}/console/  (demo admin {demo_admin!r}, password in "
                      f"config/gateway.yaml: demo values, sandbox only)", flush=True)
            print("Stop with Ctrl-C.", flush=True)
        while not stopping:
            for name, process in children:
                if process.poll() is not None:
                    print(f"{name} exited with status {process.returncode}; stopping",
                          file=sys.stderr, flush=True)
                    stopping, exit_code = True, 1
                    break
            time.sleep(0.3)
    finally:
        for _name, process in reversed(children):
            if process.poll() is None:
                process.terminate()
        for _name, process in reversed(children):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if redis is not None:
            redis.stop()
        gateway.db.dispose()
    return exit_code
