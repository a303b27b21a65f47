"""The plugin kit as a plugin author and an operator meet it: real installs with pip.

Each test works in a fresh virtual environment (``python -m venv --without-pip``) that sees
the gateway's own environment through a ``.pth`` file (``site.addsitedir``, so the gateway's
editable install and entry points work there as here). Whatever pip installs lands in the
fresh environment only, never on this process's import path. The plugin is built by pip as
usual (its build backend comes from the package index in pip's isolated build environment);
``--no-deps`` keeps the gateway's own dependencies as they are.

* ``gateway plugins new`` makes a package whose own tests pass as generated, through the
  gateway's pytest plugin, and which ruff finds clean;
* the guide's finished plugin, ``examples/dukcapil_delivery``, installs from its folder (a
  copy, so the build leaves nothing in the work tree), passes its own tests, and then, with
  no change to the gateway, is listed by ``gateway plugins``, offered in ``/api/v1/services``
  and the OpenAPI document, shown on the console's services page, and its request is
  delivered through the GO-SEND simulator; ``pip uninstall`` removes it and the agency can
  still read that request.

Run them alone with ``pytest -m plugin_kit`` (40 to 55 s on two cores).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.testing import free_port
from tests.conftest import CONFIG_DIR

pytestmark = pytest.mark.plugin_kit

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "dukcapil_delivery"
PROBE = Path(__file__).resolve().parent / "plugin_kit_probe.py"
STEP_TIMEOUT = 120


@dataclass
class Venv:
    python: Path
    site: Path
    work: Path
    env: dict

    def run(self, *args, cwd=None, env=None, timeout=STEP_TIMEOUT) -> str:
        """Run ``python ARGS`` of this environment; fail the test with its output if it
        exits non-zero."""
        result = subprocess.run([str(self.python), *map(str, args)], cwd=cwd or self.work,
                                env={**self.env, **(env or {})}, capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, (f"{' '.join(map(str, args))} exited "
                                        f"{result.returncode}:\n{result.stdout[-4000:]}\n"
                                        f"{result.stderr[-4000:]}")
        return result.stdout

    def pip(self, *args) -> str:
        return self.run("-m", "pip", *args, "--quiet")

    def gateway(self, *args, env=None) -> str:
        return self.run("-m", "gateway", *args, env=env)


@pytest.fixture
def venv(tmp_path):
    """A fresh environment that sees the gateway's, and whose own installs are its own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")],
                   check=True, timeout=60)
    python = tmp_path / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"], check=True,
                               capture_output=True, text=True).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "gateway-environment.pth").write_text(
        "".join(f"import site; site.addsitedir({path!r})\n" for path in ours))
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("GATEWAY_", "PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INPUT="1", PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}")
    work = tmp_path / "work"
    work.mkdir()
    return Venv(python, site, work, env)


def test_a_new_plugin_passes_its_own_tests_as_generated(venv):
    output = venv.gateway("plugins", "new", "village_letters", "--title", "Village letters")
    plugin = venv.work / "gateway-village-letters"
    assert f"created {plugin.name}/ with:" in output
    assert sorted(str(p.relative_to(plugin)) for p in plugin.rglob("*") if p.is_file()) == [
        "README.md", "pyproject.toml", "tests/conftest.py", "tests/test_service.py",
        "village_letters/__init__.py", "village_letters/schemas.py",
        "village_letters/service.py"]
    ruff = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--no-cache",
                           "."], cwd=plugin, capture_output=True, text=True, timeout=60)
    assert ruff.returncode == 0, ruff.stdout
    venv.pip("install", "--no-deps", "--editable", plugin)
    output = venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin)
    assert re.search(r"^8 passed in ", output, re.M), output
    venv.pip("uninstall", "--yes", "gateway-village-letters")


@pytest.fixture
def operator_env(venv, tmp_path, gateway_database_url, gateway_redis_url, gateway_redis):
    """The environment an operator's gateway runs with: a copy of config/ with the new
    service's entry, its own data directory, this test's database and Redis, and the GO-SEND
    simulator's address (the probe serves the simulator there)."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    with (config / "services.yaml").open("a") as services:
        services.write("\ndukcapil_delivery:\n  couriers: [gosend_sandbox]\n"
                       "  regency_code: \"3510\"\n")
    port = free_port()
    return {"GATEWAY_CONFIG": str(config), "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_DATABASE_URL": gateway_database_url, "GATEWAY_REDIS_URL": gateway_redis_url,
            "GATEWAY_GOSEND_SIMULATOR_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_ADMIN_PASSWORD": "plugin-kit-admin-password", "SIM_PORT": str(port)}


def test_the_guides_plugin_installs_serves_and_uninstalls_cleanly(venv, operator_env):
    source = venv.work / "dukcapil_delivery"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", ".pytest_cache"))
    venv.pip("install", "--no-deps", source)
    assert importlib.util.find_spec("dukcapil_delivery") is None, "installed on our path"
    # The installed copy, not the source: pytest runs from elsewhere. The other test proved
    # the pytest11 entry point; here only the gateway's plugin is loaded, for speed.
    output = venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                      "gateway.pytest_plugin", "--rootdir", source, source / "tests",
                      env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert re.search(r"^15 passed in ", output, re.M), output

    env = operator_env
    listed = venv.gateway("plugins", env=env)
    assert re.search(r"^dukcapil_delivery\s+0\.1\.0\s+\[gateway-dukcapil-delivery\]\s+"
                     r"hooks: register_services$", listed, re.M), listed
    assert "services: dukcapil_delivery, medicine_delivery, tourism_transport, " \
           "umkm_pickup" in listed
    seen = json.loads(venv.run("-P", PROBE, "installed", env["SIM_PORT"], env=env))
    assert seen["services"] == ["dukcapil_delivery"]
    assert "/api/v1/services/dukcapil_delivery/requests" in seen["openapi_paths"]
    assert seen["console_lists_it"] is True
    assert (seen["created"], seen["status"], seen["provider"]) == \
        (202, "delivered", "gosend_sandbox")
    assert seen["courier_was_told_the_name"] is True
    assert seen["courier_was_told_the_nik"] is False

    venv.pip("uninstall", "--yes", "gateway-dukcapil-delivery")
    assert not list(venv.site.glob("*dukcapil*")), "pip uninstall left files behind"
    listed = venv.gateway("plugins", env=env)
    assert "dukcapil" not in listed and "services: medicine_delivery" in listed
    after = json.loads(venv.run("-P", PROBE, "uninstalled", seen["key"], seen["request_id"],
                                env=env))
    assert "dukcapil_delivery" not in after["installed_services"]
    assert after["read"] == 200
    assert (after["request"]["service"], after["request"]["status"]) == \
        ("dukcapil_delivery", "delivered")
    assert after["request"]["timeline"][-1]["status"] == "delivered"
    assert after["listed"] == [seen["request_id"]]
    assert after["new_request"] == "service_not_found"
    assert after["console_request_page"] == 200
