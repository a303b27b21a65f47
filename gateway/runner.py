"""``gateway up``: the whole gateway on one machine, started and stopped as one.

Order of start: a private Redis when none is configured, a check that no other process holds
the ports to serve on (``gateway up`` says which and stops, rather than announce another
process's server as its own), schema migrations (once, before anything forks), the demo
agency, then together the API server and the courier simulators of sandbox entries that point
at this machine (their webhooks go to the API), and once those answer, the workers. Order of
stop, on SIGTERM or SIGINT or when any part dies: the reverse. The parent owns every child, so
nothing is left running after it exits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from .agencies import create_agency
from .console.users import AdminUserError, create_admin, list_admins
from .errors import GatewayError
from .keys import parse_key
from .migrate import upgrade
from .models import ApiKey
from .redis_server import EMBEDDED_REDIS_DIR, EmbeddedRedis
from .settings import ConfigError, load_settings
from .simulators.engine import HEALTH_PATH


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
        except GatewayError as exc:
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


def simulator_entry(gateway, name: str) -> tuple[dict, type, str] | None:
    """A courier's or a notifier's entry named ``name``: its settings, its adapter class and
    the path of our webhook for it; None when there is no such entry."""
    if name in gateway.courier_configs:
        config = gateway.courier_configs[name]
        return config, gateway.courier_classes[config["adapter"]], f"/webhooks/{name}"
    if name in gateway.notifier_configs:
        config = gateway.notifier_configs[name]
        return (config, gateway.notifier_classes[config["adapter"]],
                f"/webhooks/notifiers/{name}")
    return None


def local_simulators(gateway) -> list[str]:
    """Sandbox entries (couriers and notifiers) of adapters with a simulator whose base_url
    is on this machine: ``gateway up`` serves them."""
    names = [*gateway.courier_configs, *gateway.notifier_configs]
    return [name for name in names
            for config, cls, _path in [simulator_entry(gateway, name)]
            if config["enabled"] and config["sandbox"] and cls.simulator
            and urlsplit(config.get("base_url", "")).hostname in ("127.0.0.1", "localhost")]


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(url, timeout=1).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False


def simulator_health_url(base_url: str) -> str:
    """The simulator's public health path, at the root of its server whatever path its
    provider's API has (GrabExpress's has one): never an authenticated endpoint."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}{HEALTH_PATH}"


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (bound the way gunicorn binds)."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return True
    return False


def ports_taken(gateway) -> list[str]:
    """The addresses ``gateway up`` is to serve on that another process already holds."""
    settings = gateway.settings
    wanted = [(settings["host"], settings["port"])]
    for name in local_simulators(gateway):
        address = urlsplit(simulator_entry(gateway, name)[0]["base_url"])
        wanted.append((address.hostname, address.port or 80))
    return [f"{host}:{port}" for host, port in wanted if port_in_use(host, port)]


def _start_embedded_redis() -> EmbeddedRedis | None:
    """A private Redis when none is configured, started before the app is built: what this
    process writes (the demo agency's key) is then announced on the Redis its children use,
    not on a default address where no one listens."""
    try:
        settings = load_settings()
    except ConfigError:
        return None     # building the app reports it
    if settings["redis_url"]:
        return None
    redis = EmbeddedRedis(Path(settings["data_dir"]) / EMBEDDED_REDIS_DIR)
    os.environ["GATEWAY_REDIS_URL"] = redis.start()
    print(f"redis: embedded, {os.environ['GATEWAY_REDIS_URL']}", flush=True)
    return redis


def lowered_priority(by: int):
    """A ``preexec_fn`` that starts a child ``by`` steps nicer than ``gateway up``.

    The workers and the simulators yield the CPU to the API: measured on 2 cores under 16
    connections, the embedded default accepted 159 requests a second at the same priority
    and 227 with its workers and simulators at nice 10 (p99 248 -> 178 ms), and it finishes
    the burst once the load lets up. Set in the child before ``exec``, so every thread it
    starts has it (a thread's priority is its own on Linux)."""
    return (lambda: os.nice(by)) if by else None


def run_all_in_one(build_app, *, workers: int = 2, web_workers: int | None = None,
                   web_threads: int | None = None) -> int:
    """Run the whole gateway until a stop signal or a part's death.

    :param build_app: makes the Flask app; called once Redis is up
    :return: the exit status: 0 stopped on request, 1 a part died or a port is taken
    """
    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    children: list[tuple[str, subprocess.Popen]] = []
    exit_code = 0
    redis = gateway = None
    try:
        redis = _start_embedded_redis()
        gateway = build_app().extensions["gateway"]
        settings = gateway.settings
        taken = ports_taken(gateway)
        if taken:
            print(f"gateway up: {', '.join(taken)} already in use by another process; stop "
                  "it, or choose other ports (GATEWAY_PORT, the simulators' base_url)",
                  file=sys.stderr, flush=True)
            return 1
        upgrade(gateway.db)
        demo_key = ensure_demo_agency(gateway)
        demo_admin = ensure_demo_admin(gateway)
        # Two processes of 8 threads on SQLite too: their writers take turns at the write lock
        # (``gateway.writeturns``), each storing its process's new requests in groups.
        web_workers, web_threads = web_workers or 2, web_threads or 8
        background = lowered_priority(settings["jobs"]["background_nice"])
        env = dict(os.environ)
        command = [sys.executable, "-m", "gateway"]
        base = f"http://{settings['host']}:{settings['port']}"
        children.append(("api", subprocess.Popen(
            [*command, "serve", "--workers", str(web_workers), "--threads", str(web_threads)],
            env=env)))
        # The simulators start beside the API rather than after it: they are independent.
        simulators = [(name, subprocess.Popen(
            [*command, "simulator", "run", name, "--webhook-url",
             f"{base}{simulator_entry(gateway, name)[2]}"],
            env=env, preexec_fn=background)) for name in local_simulators(gateway)]
        children.extend((f"simulator-{name}", process) for name, process in simulators)
        healthy = _wait_healthy(f"{base}/healthz", children[0][1])
        # Workers start only once the simulators answer, so no booking meets a closed port.
        for name, process in simulators:
            _wait_healthy(simulator_health_url(simulator_entry(gateway, name)[0]["base_url"]),
                          process)
        children.extend((f"worker-{i + 1}", subprocess.Popen([*command, "worker"], env=env,
                                                             preexec_fn=background))
                        for i in range(workers))
        if healthy and children[0][1].poll() is None:
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
        if gateway is not None:
            gateway.db.dispose()
    return exit_code
