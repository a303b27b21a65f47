"""What an operator gets from ``pip install .`` (the Dockerfile's way): a built wheel must
carry the files the gateway reads at run time, not only its modules. The editable install
of ``scripts/run`` and ``scripts/test`` reads the source tree, so only a real build shows
a file left out (it was: the console's templates, static files and translations, the API
docs page and the migrations' template were all missing from wheels).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.plugin_kit

#: files the gateway opens at run time, relative to the installed package
RUNTIME_FILES = (
    "gateway/templates/api_docs.html",
    "gateway/console/templates/console/base.html",
    "gateway/console/templates/console/sign_in.html",
    "gateway/console/static/console.css",
    "gateway/console/static/console.js",
    "gateway/console/translations/id/LC_MESSAGES/messages.mo",
    "gateway/migrations/script.py.mako",
    "gateway/scaffold/template/package/service.py.tmpl",
)


def _dockerfile_build_context(into: Path) -> None:
    """Copy what ``deploy/Dockerfile`` COPYs into the image's /src, so a wheel built there is
    the image's."""
    lines = (ROOT / "deploy/Dockerfile").read_text().splitlines()
    into.mkdir()
    for line in lines:
        if line.startswith("COPY "):
            for name in line.split()[1:-1]:
                if (ROOT / name).is_dir():
                    shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns(
                        "__pycache__", "*.egg-info"))
                else:
                    shutil.copy(ROOT / name, into / name)


def test_the_image_installs_the_locked_versions():
    lines = (ROOT / "deploy/Dockerfile").read_text().splitlines()
    copied = {name for line in lines if line.startswith("COPY ") for name in line.split()[1:-1]}
    installs = [line for line in lines if "pip install" in line]
    assert "requirements.lock" in copied
    assert installs and all("-c requirements.lock" in line for line in installs)


def test_a_built_wheel_carries_every_file_the_gateway_reads_at_run_time(tmp_path):
    """Built from exactly what the Dockerfile copies into the image (it once left out
    MANIFEST.in, which the build reads to know the package's data files)."""
    source = tmp_path / "source"
    _dockerfile_build_context(source)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next(Path(tmp_path / "dist").glob("banyuwangi_gateway-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in RUNTIME_FILES if name not in names]
    assert not missing, f"the wheel lacks {missing}"
    templates = {n for n in names if n.startswith("gateway/console/templates/console/")}
    on_disk = {f"gateway/console/templates/console/{p.name}"
               for p in (ROOT / "gateway/console/templates/console").glob("*.html")}
    assert templates == on_disk
