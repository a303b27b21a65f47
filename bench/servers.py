"""Real servers for a benchmark run: Redis, a throwaway PostgreSQL cluster, the courier
simulators (GO-SEND alone, or GO-SEND, GrabExpress, Lalamove and GO-RIDE together), gateway API
nodes and workers. Everything listens on 127.0.0.1 and is stopped at the end of the run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
SIM_CREDENTIALS = {"client_id": "bench-engine", "pass_key": "bench-pass-key",
                   "webhook_token": "bench-webhook-token-0123456789"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, within: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within} s")


class Postgres:
    """A throwaway cluster (postgres refuses to run as root: then as the `postgres` user)."""

    def __init__(self, workdir: Path):
        self.bin = self._bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg.", dir="/tmp"))
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")

    @staticmethod
    def _bin_dir() -> Path | None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if found:
            return found[-1].parent
        initdb = shutil.which("initdb")
        return Path(initdb).parent if initdb else None

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, cwd=self.dir, stdout=subprocess.DEVNULL,
                       stderr=subprocess.STDOUT)

    def start(self) -> str:
        self._run("initdb", f"--pgdata={self.dir}/data", "--username=postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        self._run("pg_ctl", f"--pgdata={self.dir}/data", f"--log={self.dir}/server.log",
                  "--wait", "--silent", "start", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                  "-c shared_buffers=256MB -c synchronous_commit=off")
        self._run("createdb", "--host=127.0.0.1", f"--port={self.port}", "--username=postgres",
                  "gateway_bench")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/gateway_bench"

    def create_database(self, name: str) -> str:
        """Another database in the same cluster (a benchmark that wants its own tables)."""
        self._run("createdb", "--host=127.0.0.1", f"--port={self.port}", "--username=postgres",
                  name)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def pid(self) -> int:
        """The postmaster's process id (its backends are its children)."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        try:
            self._run("pg_ctl", f"--pgdata={self.dir}/data", "--mode=fast", "--wait",
                      "--silent", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Simulator:
    """The GO-SEND simulator in this process. ``step_seconds`` large: bookings stay booked,
    so the benchmarks measure booking, not the (simulated) ride."""

    def __init__(self, step_seconds: float = 3600.0):
        from gateway.couriers.gosend.simulator import GoSendSimulator, create_simulator_app
        from gateway.testing import ServerThread

        self.sim = GoSendSimulator(step_seconds=step_seconds, **SIM_CREDENTIALS)
        self.server = ServerThread(create_simulator_app(self.sim)).__enter__()
        self.sim.url = self.url = self.server.url
        self.sim.start_clock()

    def booked(self) -> int:
        with self.sim.lock:
            return len(self.sim.bookings)

    def stop(self) -> None:
        self.sim.stop_clock()
        self.server.__exit__(None, None, None)


class Simulators:
    """GO-SEND, GrabExpress, Lalamove and GO-RIDE simulators in this process, each on its own
    port, and the ``couriers.yaml`` entries that reach them (the repository's sandbox names).
    Webhooks go nowhere until :meth:`send_webhooks_to` names the gateway."""

    GRAB_PREFIX = "/grab-express-sandbox"

    def __init__(self, step_seconds: float, slow_seconds: float = 3.0):
        from gateway.couriers.goride.mapping import DEFAULT_WEBHOOK_HEADER
        from gateway.couriers.goride.simulator import GoRideSimulator
        from gateway.couriers.gosend.simulator import GoSendSimulator
        from gateway.couriers.grabexpress.simulator import GRABID_PATH, GrabExpressSimulator
        from gateway.couriers.lalamove.simulator import LalamoveSimulator
        from gateway.testing import ServerThread

        timing = {"step_seconds": step_seconds, "slow_seconds": slow_seconds}
        grab = {"client_id": "bench-grab", "client_secret": "bench-grab-secret",
                "webhook_auth": "bench-grab-webhook-auth-0123456789"}
        lalamove = {"api_key": "pk_test_bench", "api_secret": "sk_test_bench-secret",
                    "market": "ID"}
        self.sims = {
            "gosend_sandbox": GoSendSimulator(**SIM_CREDENTIALS, **timing),
            "grab_sandbox": GrabExpressSimulator(prefix=self.GRAB_PREFIX,
                                                 grabid_path=GRABID_PATH,
                                                 **grab, **timing),
            "lalamove_sandbox": LalamoveSimulator(**lalamove, **timing),
            "goride_sandbox": GoRideSimulator(**SIM_CREDENTIALS, **timing,
                                              webhook_header=DEFAULT_WEBHOOK_HEADER),
        }
        self.servers = []
        for sim in self.sims.values():
            server = ServerThread(sim.create_app()).__enter__()
            self.servers.append(server)
            sim.url = server.url
            sim.start_clock()
        url = {name: sim.url for name, sim in self.sims.items()}
        self.entries = {
            "gosend_sandbox": {"adapter": "gosend", "sandbox": True,
                               "base_url": url["gosend_sandbox"], **SIM_CREDENTIALS},
            "grab_sandbox": {"adapter": "grabexpress", "sandbox": True,
                             "base_url": url["grab_sandbox"] + self.GRAB_PREFIX,
                             "token_url": url["grab_sandbox"] + GRABID_PATH,
                             "limits": {"max_weight_grams": 20000, "max_side_cm": 50},
                             **grab},
            "lalamove_sandbox": {"adapter": "lalamove", "sandbox": True,
                                 "base_url": url["lalamove_sandbox"],
                                 "webhook_path": "/webhooks/lalamove_sandbox", **lalamove},
            "goride_sandbox": {"adapter": "goride", "sandbox": True,
                               "base_url": url["goride_sandbox"], "service_type": "GoCar",
                               "limits": {"max_passengers": 4}, **SIM_CREDENTIALS},
        }

    def send_webhooks_to(self, api_url: str) -> None:
        for name, sim in self.sims.items():
            sim.webhook_url = f"{api_url}/webhooks/{name}"

    def bookings(self) -> list[tuple[str, dict]]:
        """(courier, booking) for every booking every simulator holds, and whether it is
        still live there (not in a terminal status of that provider)."""
        found = []
        for name, sim in self.sims.items():
            for booking in requests.get(f"{sim.url}/_sim/bookings", timeout=30).json():
                found.append((name, {**booking, "live": booking["status"] not in sim.terminal}))
        return found

    def stop(self) -> None:
        for sim in self.sims.values():
            sim.stop_clock()
        for server in self.servers:
            server.__exit__(None, None, None)


class Gateway:
    """A config directory, a migrated database, a key, and the processes of one setup.

    ``name`` keeps the config and data of two setups in one run apart; ``core``, ``couriers``
    and ``services`` replace the bench defaults (a service's entry is merged into the
    repository's)."""

    def __init__(self, workdir: Path, database_url: str, redis_url: str, sim_url: str | None,
                 stack: ExitStack, *, name: str = "", core: dict | None = None,
                 couriers: dict | None = None, services: dict | None = None):
        from gateway import create_app
        from gateway.agencies import create_agency
        from gateway.migrate import upgrade

        self.workdir, self.stack = workdir, stack
        prefix = f"{name}-" if name else ""
        config, data = workdir / f"{prefix}config", workdir / f"{prefix}data"
        shutil.copytree(ROOT / "config", config)
        (config / "gateway.yaml").write_text(yaml.safe_dump(core or {
            "log_level": "WARNING", "demo": {"enabled": False},
            "api": {"rate_limits": {"test": {"rate": 100000.0, "burst": 100000}}},
            "sweep": {"interval_seconds": 5, "stale_after_seconds": 30}}))
        if couriers is None:
            couriers = {"gosend_sandbox": {"adapter": "gosend", "sandbox": True,
                                           "base_url": sim_url, "timeout_seconds": 5,
                                           **SIM_CREDENTIALS},
                        "own_fleet": {"enabled": False}}
        (config / "couriers.yaml").write_text(yaml.safe_dump(couriers))
        merged = yaml.safe_load((config / "services.yaml").read_text())
        for service, entry in (services or {"medicine_delivery": {
                "couriers": ["gosend_sandbox"]}}).items():
            merged[service] = {**merged.get(service, {}), **entry}
        (config / "services.yaml").write_text(yaml.safe_dump(merged))
        self.config_dir = config
        self.env = {**os.environ, "GATEWAY_CONFIG": str(config), "GATEWAY_DATA_DIR": str(data),
                    "GATEWAY_DATABASE_URL": database_url, "GATEWAY_REDIS_URL": redis_url,
                    "GATEWAY_HOST": "127.0.0.1",
                    # the rq baseline imports bench.trivial from the repository
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                os.environ.get("PYTHONPATH")]))}
        self.app = create_app({"config_dir": str(config), "data_dir": str(data),
                               "database_url": database_url, "redis_url": redis_url})
        self.gateway = self.app.extensions["gateway"]
        upgrade(self.gateway.db)
        _agency, self.key = create_agency(self.gateway, f"Bench {time.time_ns()}",
                                          ["medicine_delivery", "umkm_pickup",
                                           "tourism_transport"], key_type="test",
                                          actor="bench")
        self.log = open(workdir / "processes.log", "ab")  # noqa: SIM115 - closed by the stack
        stack.callback(self.log.close)

    def spawn(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", *args], env=env or self.env,
                                   stdout=self.log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=self.workdir)
        self.stack.callback(stop, process)
        return process

    def serve(self, workers: int = 2) -> str:
        return self.serve_process(workers)[0]

    def serve_process(self, workers: int = 2) -> tuple[str, subprocess.Popen]:
        """``gateway serve`` (its default threads) on a free port: its URL and process."""
        port = free_port()
        process = self.spawn("gateway", "serve", "--workers", str(workers),
                             env={**self.env, "GATEWAY_PORT": str(port)})
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", process=process)
        return url, process


def gunicorn(app: str, workers: int, stack: ExitStack, log) -> tuple[str, subprocess.Popen]:
    """The baseline app under gunicorn's sync workers: its URL and process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "sync",
         "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT), app],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stack.callback(stop, process)
    url = f"http://127.0.0.1:{port}"
    wait_http(url, process=process)
    return url, process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
