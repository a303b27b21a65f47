"""The README's run path, end to end: ``gateway up`` on the embedded default.

``python -m gateway up`` runs as a real process tree (migrations, demo agency, embedded Redis,
gunicorn, the GO-SEND simulator, rq worker) on a copy of ``config/``, with a private data
directory and ports and no ``GATEWAY_REDIS_URL``. The test reads the demo key from the banner,
calls the API as the README tells a newcomer to, sends the documented example request and
watches it booked at the simulator and delivered, then stops the tree with SIGTERM and checks
that nothing is left running.

Run it alone with ``pytest -k quickstart``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from openapi_spec_validator import validate
from redis import Redis
from redis.exceptions import RedisError

# Timing-sensitive (times `gateway up` to its banner, runs many processes):
# scripts/test runs it alone, after the parallel run.
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60
STOP_TIMEOUT = 30
DELIVERY_TIMEOUT = 30

BANNER_URL = re.compile(r"The gateway is up at (http://\S+)")
BANNER_KEY = re.compile(r"Demo agency key[^:\n]*: (\S+)")
EMBEDDED_REDIS = re.compile(r"redis: embedded, (unix://\S+|redis://\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_delivered(base: str, key: str, request_id: str) -> dict:
    deadline, body = time.monotonic() + DELIVERY_TIMEOUT, {}
    while time.monotonic() < deadline and body.get("status") != "delivered":
        time.sleep(0.3)
        body = requests.get(f"{base}/api/v1/requests/{request_id}",
                            headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
    assert body["status"] == "delivered", body
    return body


def grab_urls(port: int) -> dict:
    return {"GATEWAY_GRAB_SIMULATOR_URL": f"http://127.0.0.1:{port}/grab-express-sandbox",
            "GATEWAY_GRAB_TOKEN_URL": f"http://127.0.0.1:{port}/grabid/v1/oauth2/token"}


def wait_for_banner(process: subprocess.Popen, log: Path) -> str:
    """The output up to the demo key line; fail early if ``gateway up`` exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if BANNER_URL.search(text) and BANNER_KEY.search(text):
            return text
        if process.poll() is not None:
            raise AssertionError(f"gateway up exited with status {process.returncode} "
                                 f"before its banner:\n{text[-4000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no banner within {START_TIMEOUT} s:\n"
                         f"{log.read_text(errors='replace')[-4000:]}")


def live_processes(pgid: int, marker: str) -> list[str]:
    """Processes (not zombies) in the process group ``pgid`` or whose command line names
    ``marker``, as "pid: command line" strings."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
        except OSError:  # exited meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may contain spaces, so split after its ")".
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if state != "Z" and (int(pgrp) == pgid or marker in cmdline):
            found.append(f"{entry.name}: {cmdline}")
    return found


def redis_answers(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except RedisError:
        return False
    finally:
        client.close()


def up_environment(tmp_path, port: int, **extra: str) -> dict:
    """What a test gives ``gateway up``: a copy of config/, private data and ports, the
    simulators on free ports, and the embedded default (no Redis and no database from the
    caller's environment); ``extra`` adds or overrides variables."""
    config_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config", config_dir)
    env = {**os.environ, "GATEWAY_CONFIG": str(config_dir),
           "GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_HOST": "127.0.0.1",
           "GATEWAY_PORT": str(port),
           "GATEWAY_GOSEND_SIMULATOR_URL": f"http://127.0.0.1:{free_port()}",
           "GATEWAY_GORIDE_SIMULATOR_URL": f"http://127.0.0.1:{free_port()}",
           **grab_urls(free_port()),
           "GATEWAY_LALAMOVE_SIMULATOR_URL": f"http://127.0.0.1:{free_port()}",
           "GATEWAY_WHATSAPP_SIMULATOR_URL": f"http://127.0.0.1:{free_port()}",
           "GATEWAY_SMS_SIMULATOR_URL": f"http://127.0.0.1:{free_port()}",
           "GATEWAY_SMS_CALLBACK_URL":
               f"http://127.0.0.1:{port}/webhooks/notifiers/sms_sandbox",
           **extra}
    for name in ("GATEWAY_REDIS_URL", "GATEWAY_DATABASE_URL"):
        env.pop(name, None)
    return env


def start_up(tmp_path, env: dict) -> tuple[subprocess.Popen, Path]:
    """``gateway up`` as its own process group, its output in ``tmp_path/gateway-up.log``."""
    log_path = tmp_path / "gateway-up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway", "up"], cwd=tmp_path,
                                   env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return process, log_path


def kill_tree(process: subprocess.Popen) -> None:
    """Whatever happened, take the whole tree down (it has its own session/group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def stop_tree(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_tree(process)


def test_gateway_up_serves_the_demo_agency_and_stops_cleanly(tmp_path):
    port = free_port()
    # The GO-SEND simulator that `up` starts runs on a quick clock.
    env = up_environment(tmp_path, port, GATEWAY_SIMULATOR_STEP_SECONDS="0.3")
    # Notices wait for no night: the patient's notice is looked for below, at any hour.
    settings = tmp_path / "config" / "gateway.yaml"
    settings.write_text(settings.read_text().replace(
        'quiet_hours: {start: "21:00", end: "07:00"}', "quiet_hours: null"))
    process, log_path = start_up(tmp_path, env)
    try:
        banner = wait_for_banner(process, log_path)
        base = BANNER_URL.search(banner).group(1)
        key = BANNER_KEY.search(banner).group(1)
        redis_url = EMBEDDED_REDIS.search(banner).group(1)
        assert base == f"http://127.0.0.1:{port}"

        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200

        anonymous = requests.get(f"{base}/api/v1/services", timeout=10)
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "unauthenticated"

        services = requests.get(f"{base}/api/v1/services", timeout=10,
                                headers={"Authorization": f"Bearer {key}"})
        assert services.status_code == 200, services.text
        assert [s["name"] for s in services.json()["services"]] == [
            "medicine_delivery", "tourism_transport", "umkm_pickup"]

        spec = requests.get(f"{base}/api/openapi.json", timeout=10)
        assert spec.status_code == 200
        validate(spec.json())

        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text

        # Under a burst the API answers first: the workers and simulators run nicer.
        niceness = {}
        for child in psutil.Process(process.pid).children(recursive=True):
            command = child.cmdline()
            role = next((word for word in ("serve", "worker", "simulator")
                         if word in command[3:4]), None)
            if role:
                niceness.setdefault(role, set()).add(child.nice())
        started_at = psutil.Process(process.pid).nice()
        assert niceness == {"serve": {started_at}, "worker": {started_at + 10},
                            "simulator": {started_at + 10}}, niceness

        # The example from the API docs goes to the GO-SEND simulator and on to the door.
        example = spec.json()["paths"]["/api/v1/services/medicine_delivery/requests"]["post"][
            "requestBody"]["content"]["application/json"]["example"]
        created = requests.post(f"{base}/api/v1/services/medicine_delivery/requests",
                                json=example, headers={"Authorization": f"Bearer {key}"},
                                timeout=10)
        assert created.status_code == 202, created.text
        body = wait_delivered(base, key, created.json()["id"])
        assert body["provider"] == "gosend_sandbox"
        assert body["provider_reference"].startswith("GK-11-")
        applied = [e["status"] for e in body["timeline"] if e["applied"]]
        assert applied == ["received", "dispatching", "booked", "driver_assigned",
                           "picked_up", "delivered"]
        # The citizen's link works on the embedded default, and offers the survey.
        assert body["tracking_url"].startswith(f"{base}/t/")
        tracking = requests.get(body["tracking_url"], timeout=10)
        assert tracking.status_code == 200 and "Sudah diterima" in tracking.text
        assert "/s/" in tracking.text
        # The patient heard of each step on WhatsApp, in Indonesian, once each, from the
        # simulator `up` started: accepted with the tracking link, the courier, the PIN,
        # delivered with the survey link.
        whatsapp = env["GATEWAY_WHATSAPP_SIMULATOR_URL"]
        wanted = ["kurir_ditugaskan_id", "layanan_diterima_id", "layanan_terkirim_id",
                  "pin_serah_terima_id"]
        deadline = time.monotonic() + 30
        while True:
            sent = [r["json"] for r in requests.get(f"{whatsapp}/_sim/requests",
                                                    timeout=10).json()
                    if r["path"].endswith("/messages")]
            if sorted(m["template"]["name"] for m in sent) == wanted \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert sorted(m["template"]["name"] for m in sent) == wanted
        assert {m["template"]["language"]["code"] for m in sent} == {"id"}
        said = {m["template"]["name"]: [p["text"] for p in
                                        m["template"]["components"][0]["parameters"]]
                for m in sent}
        assert said["layanan_diterima_id"][-1] == body["tracking_url"]
        assert said["pin_serah_terima_id"][-1] == body["delivery_pin"]
        assert said["layanan_terkirim_id"][-1] == body["tracking_url"].replace("/t/", "/s/")
        assert requests.get(said["layanan_terkirim_id"][-1], timeout=10).status_code == 200
        courier, plate = said["kurir_ditugaskan_id"][1:3]
        assert courier.isalpha() and re.fullmatch(r"[A-Z]{1,2} \d{1,4} [A-Z]{0,3}", plate)
        assert "notice_sent" in [e["raw_status"] for e in body["timeline"]]
        fhir = requests.get(f"{base}/api/v1/requests/{body['id']}/fhir",
                            headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert Bundle.model_validate(fhir.json()).entry[1].resource.status == "completed"

        # The other two services' documented examples complete on their own simulators.
        providers = {"umkm_pickup": {"grab_sandbox", "lalamove_sandbox"},
                     "tourism_transport": {"goride_sandbox"}}
        for service, expected in providers.items():
            example = spec.json()["paths"][f"/api/v1/services/{service}/requests"]["post"][
                "requestBody"]["content"]["application/json"]["example"]
            created = requests.post(f"{base}/api/v1/services/{service}/requests", json=example,
                                    headers={"Authorization": f"Bearer {key}"}, timeout=10)
            assert created.status_code == 202, created.text
            body = wait_delivered(base, key, created.json()["id"])
            assert body["provider"] in expected, body

        # The console: the demo admin from the banner signs in and finds the request.
        assert f"Console: {base}/console/" in log_path.read_text(errors="replace")
        console = requests.Session()
        form = console.get(f"{base}/console/sign-in", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        signed_in = console.post(f"{base}/console/sign-in", timeout=10, data={
            "csrf_token": token, "username": "demo-admin",
            "password": "demo-password-NOT-A-SECRET"})
        assert signed_in.url == f"{base}/console/dashboard", signed_in.text[:500]
        listing = console.get(f"{base}/console/requests", timeout=10).text
        assert f'id="request-{body["id"]}"' in listing

        # Stop the way Ctrl-C or a service manager does: one signal to `gateway up` only, which
        # must stop its own children.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_TIMEOUT) == 0, log_path.read_text(errors="replace")

        assert not redis_answers(redis_url), "the embedded Redis still answers"
        # Children stop before their parent exits; a short grace for the kernel's bookkeeping.
        deadline = time.monotonic() + 2
        while (left := live_processes(process.pid, str(tmp_path))) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, "left running after gateway up exited:\n" + "\n".join(left)
        output = log_path.read_text(errors="replace")
        assert "Traceback" not in output, output
    finally:
        kill_tree(process)


def test_gateway_up_is_quiet_and_quick_until_its_banner(tmp_path):
    """What a newcomer sees after ``scripts/run``: the banner within seconds, and before it
    no error of the gateway's own making (no 401 from probing a simulator, no warning that a
    key change could not be published)."""
    env = up_environment(tmp_path, free_port())
    started = time.monotonic()
    process, log_path = start_up(tmp_path, env)
    try:
        banner = wait_for_banner(process, log_path)
        took = time.monotonic() - started
    finally:
        stop_tree(process)
    before_banner = banner.split("The gateway is up")[0]
    assert " 401 " not in before_banner, before_banner
    assert "WARNING" not in before_banner and "could not" not in before_banner, before_banner
    assert "/_sim/" not in before_banner, before_banner   # readiness probes are not news
    # Seconds on an idle machine; the bound leaves room for a busy CI runner.
    assert took < 25, f"gateway up took {took:.1f} s to its banner"


def test_gateway_up_on_a_port_another_process_holds_fails_and_says_so(tmp_path):
    """The attack, or the accident: something else listens on GATEWAY_PORT and answers 200
    to everything, /healthz included. ``gateway up`` must not announce itself up there (the
    demo key and console would point at the other process): it stops, non-zero, naming the
    port."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class AnswersEverything(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server interface
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    squatter = ThreadingHTTPServer(("127.0.0.1", 0), AnswersEverything)
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    port = squatter.server_address[1]
    process, log_path = start_up(tmp_path, up_environment(tmp_path, port))
    try:
        status = process.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        status = None
    finally:
        stop_tree(process)
        squatter.shutdown()
        squatter.server_close()
    output = log_path.read_text(errors="replace")
    assert status not in (None, 0), output
    assert "The gateway is up" not in output, output
    assert f"127.0.0.1:{port}" in output and "already in use" in output, output
    assert "Traceback" not in output, output
    left = live_processes(process.pid, str(tmp_path))
    assert not left, "left running:\n" + "\n".join(left)
