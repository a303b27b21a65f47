"""``gateway plugins new``: what it writes and what it refuses (fast; the generated tests are
run for real in a fresh environment by ``tests/test_plugin_kit.py``)."""

from __future__ import annotations

import ast
import re
import tomllib

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.scaffold import ScaffoldError, create_plugin, render


def test_the_files_of_a_new_plugin_are_complete_and_valid(tmp_path):
    created = create_plugin("civil_letters", tmp_path / "out",
                            title='Letters "from" the village')
    assert created.files == ("README.md", "civil_letters/__init__.py",
                             "civil_letters/schemas.py", "civil_letters/service.py",
                             "pyproject.toml", "tests/conftest.py", "tests/test_service.py")
    for path in created.files:
        text = (tmp_path / "out" / path).read_text()
        assert not re.search(r"\$\{?[A-Za-z_]", text), f"a placeholder is left in {path}"
        if path.endswith(".py"):
            ast.parse(text, path)
    project = tomllib.loads((tmp_path / "out" / "pyproject.toml").read_text())
    assert project["project"]["name"] == "gateway-civil-letters"
    assert project["project"]["entry-points"]["gateway"] == {"civil_letters": "civil_letters"}
    service = (tmp_path / "out" / "civil_letters" / "service.py").read_text()
    assert 'name = "civil_letters"' in service
    assert 'title = "Letters \\"from\\" the village"' in service
    assert "class CivilLettersService(Service):" in service


@pytest.mark.parametrize("name", ["Civil", "1letters", "civil-letters", "x", "class",
                                  "gateway"])
def test_a_name_that_cannot_be_a_service_and_a_package_is_refused(name):
    with pytest.raises(ScaffoldError, match="cannot be a service name"):
        render(name)


def test_nothing_is_ever_written_over(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ScaffoldError, match="already exists and is not an empty directory"):
        create_plugin("civil_letters", tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_the_command_writes_into_gateway_name_by_default_and_says_what_next(tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plugins", "new", "civil_letters"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("created gateway-civil-letters/ with:\n")
    assert "pip install -e ." in result.output
    assert (tmp_path / "gateway-civil-letters" / "civil_letters" / "__init__.py").exists()
    again = CliRunner().invoke(main, ["plugins", "new", "civil_letters"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = CliRunner().invoke(main, ["plugins", "new", "Bad-Name"])
    assert bad.exit_code == 1 and "cannot be a service name" in bad.output


def test_a_new_notifier_is_a_package_of_the_notifiers_group_whose_tests_pass(tmp_path):
    """``--kind notifier``: adapter, mapping and simulator, registered in the
    ``gateway.notifiers`` group; its generated tests pass against the gateway as it is."""
    import os
    import subprocess
    import sys

    result = CliRunner().invoke(main, ["plugins", "new", "sms_lokal", "--kind", "notifier",
                                       "--directory", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "sms_lokal/__init__.py",
                     "sms_lokal/adapter.py", "sms_lokal/mapping.py", "sms_lokal/simulator.py",
                     "tests/conftest.py", "tests/test_notifier.py"]
    for path in files:
        text = (out / path).read_text()
        assert not re.search(r"\$\{?[A-Za-z_]", text.replace("{$env:", "")), path
    project = tomllib.loads((out / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["gateway.notifiers"] == {
        "sms_lokal": "sms_lokal.adapter"}
    assert "class SmsLokalNotifier(NotifierAdapter):" in (out / "sms_lokal/adapter.py"
                                                          ).read_text()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests"], cwd=out, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(out)})
    assert run.returncode == 0, run.stdout + run.stderr
