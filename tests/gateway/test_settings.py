"""Configuration: precedence, secret references, and errors that name file, path and reason."""

from __future__ import annotations

import shutil

import pytest

from gateway.settings import ConfigError, load_settings
from tests.conftest import CONFIG_DIR


@pytest.fixture
def config_dir(tmp_path):
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target


def test_defaults_apply_when_keys_are_absent(tmp_path):
    (tmp_path / "gateway.yaml").write_text("{}\n")
    settings = load_settings(tmp_path)
    assert (settings["host"], settings["port"], settings["mode"]) == ("127.0.0.1", 8080,
                                                                      "sandbox")
    assert settings["jobs"]["intervals"] == [5, 30, 120, 600]


def test_environment_variables_override_the_files(config_dir, monkeypatch):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql+psycopg://gw@db/gateway")
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://10.0.0.5:6379/1")
    monkeypatch.setenv("GATEWAY_PORT", "9090")
    monkeypatch.setenv("GATEWAY_HOST", "192.0.2.10")
    settings = load_settings(config_dir)
    assert settings["database_url"] == "postgresql+psycopg://gw@db/gateway"
    assert settings["redis_url"] == "redis://10.0.0.5:6379/1"
    assert (settings["host"], settings["port"]) == ("192.0.2.10", 9090)


def test_gateway_config_chooses_the_directory(config_dir, monkeypatch):
    (config_dir / "gateway.yaml").write_text("port: 8181\n")
    monkeypatch.setenv("GATEWAY_CONFIG", str(config_dir))
    assert load_settings()["port"] == 8181


def test_secrets_are_read_from_the_environment_or_a_file(config_dir, tmp_path, monkeypatch):
    secret_file = tmp_path / "key.txt"
    secret_file.write_text("from-a-file\n")
    (config_dir / "couriers.yaml").write_text(
        f"gosend:\n  pass_key: {{$env: GW_TEST_PASS}}\n  other: {{$file: {secret_file}}}\n"
        "  fallback: {$env: GW_TEST_ABSENT, default: plain}\n")
    monkeypatch.setenv("GW_TEST_PASS", "from-the-env")
    monkeypatch.delenv("GW_TEST_ABSENT", raising=False)
    settings = load_settings(config_dir)
    assert settings.couriers["gosend"] == {"pass_key": "from-the-env", "other": "from-a-file",
                                           "fallback": "plain"}


def test_every_problem_is_reported_with_file_and_key_path(config_dir):
    (config_dir / "gateway.yaml").write_text("api:\n  max_body_bytes: 10\nsurprise: 1\n")
    (config_dir / "couriers.yaml").write_text("gosend: just-a-string\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_dir)
    problems = {(f.rsplit("/", 1)[1], path) for f, path, _ in caught.value.problems}
    assert problems == {("gateway.yaml", "api.max_body_bytes"), ("gateway.yaml", "surprise"),
                        ("couriers.yaml", "gosend")}


def test_broken_yaml_names_the_line(config_dir):
    (config_dir / "services.yaml").write_text("medicine_delivery:\n  enabled: [\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_dir)
    ((file, where, reason),) = caught.value.problems
    assert file.endswith("services.yaml") and where.startswith("line ")
    assert "not valid YAML" in reason


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(ConfigError, match="configuration directory does not exist"):
        load_settings(tmp_path / "nope")


def test_a_plugins_own_schema_rejects_its_bad_section(make_app):
    with pytest.raises(ConfigError) as caught:
        make_app(services={"tourism_transport": {"destinations": [{"id": "Bad Id!"}]}})
    paths = {path for _f, path, _r in caught.value.problems}
    assert "tourism_transport.destinations.0.id" in paths
    assert "tourism_transport.destinations.0.name" in paths


def test_live_mode_refuses_to_start_without_a_secret_key(make_app, monkeypatch):
    monkeypatch.delenv("GATEWAY_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        make_app(mode="live")
    assert [path for _f, path, _r in caught.value.problems] == ["secret_key"]
    from cryptography.fernet import Fernet

    assert make_app(mode="live", secret_key=Fernet.generate_key().decode())


def test_console_passwords_are_hashed_at_the_configured_cost_and_live_keeps_the_default(
        make_app, config_dir):
    from werkzeug.security import check_password_hash

    from gateway.console.users import authenticate, create_admin
    from gateway.settings import DEFAULT_PASSWORD_HASH

    assert load_settings(config_dir)["console"]["password_hash"] == DEFAULT_PASSWORD_HASH
    gateway = make_app(console={"password_hash": "scrypt:2048:8:1"}).extensions["gateway"]
    user = create_admin(gateway, "wulan", "a long enough password", "admin")
    assert user.password_hash.startswith("scrypt:2048:8:1$")
    assert check_password_hash(user.password_hash, "a long enough password")
    assert authenticate(gateway, "wulan", "a long enough password").username == "wulan"
    assert authenticate(gateway, "nobody", "a long enough password") is None

    (config_dir / "gateway.yaml").write_text(
        "mode: live\nsecret_key: x\nconsole:\n  password_hash: scrypt:1024:8:1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_dir)
    assert [path for _f, path, _r in caught.value.problems] == ["console.password_hash"]
    (config_dir / "gateway.yaml").write_text("console:\n  password_hash: md5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_dir)
    assert [path for _f, path, _r in caught.value.problems] == ["console.password_hash"]
