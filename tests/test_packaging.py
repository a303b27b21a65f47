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


def test_a_built_wheel_carries_every_file_the_gateway_reads_at_run_time(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "build", "*.egg-info", "__pycache__", ".pytest_cache",
        ".ruff_cache"))
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
