"""Load generation: wrk for throughput (it takes little CPU, which matters on 2 cores), and a
paced Python client for a steady rate."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import requests

WRK_SCRIPT = """
local threads = {}
function setup(thread) thread:set("tid", #threads + 1); table.insert(threads, thread) end
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", %(path)s, %(headers)s,
                    string.format(%(template)s, tid, counter))
end
"""


def lua_string(text: str) -> str:
    return json.dumps(text)   # a JSON string is a valid Lua string literal for this text


def wrk_post(url: str, path: str, body: dict, headers: dict, seconds: int, connections: int,
             workdir: Path, unique_field: str | None = None) -> dict:
    """POST ``body`` (``unique_field`` made unique per request) for ``seconds``; return
    requests per second, p50 and p99 in ms, and the count of non-2xx answers."""
    template = json.dumps(body).replace("%", "%%")
    if unique_field:
        template = template.replace(f'"{unique_field}": "{body[unique_field]}"',
                                    f'"{unique_field}": "{body[unique_field]}-'
                                    f'{time.monotonic_ns()}-%d-%d"')
    else:
        template += "%.0s%.0s"
    lua_headers = "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}"
                                  for k, v in {**headers,
                                               "Content-Type": "application/json"}.items()) + "}"
    script = workdir / f"post-{time.monotonic_ns()}.lua"
    script.write_text(WRK_SCRIPT % {"path": lua_string(path), "headers": lua_headers,
                                    "template": lua_string(template)})
    result = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                             "-s", str(script), url], capture_output=True, text=True,
                            check=True, timeout=seconds + 60)
    return parse_wrk(result.stdout)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict:
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.M))
    if "99" not in latency:
        raise RuntimeError(f"wrk printed no latency distribution:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": rate, "p50": _ms(latency["50"]), "p99": _ms(latency["99"]),
            "non_2xx": int(errors.group(1)) if errors else 0}


def paced(send, rate: float, seconds: float, threads: int = 8) -> list[tuple[float, object]]:
    """Call ``send(n)`` ``rate`` times a second for ``seconds``, from ``threads`` threads, each
    on its own schedule; return (when sent, what it returned) for every call."""
    results: list[tuple[float, object]] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2
    total = int(rate * seconds)

    def run(offset: int):
        for n in range(offset, total, threads):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.time()
            outcome = send(n)
            with lock:
                results.append((sent, outcome))

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def session() -> requests.Session:
    s = requests.Session()
    s.headers["Connection"] = "keep-alive"
    return s
