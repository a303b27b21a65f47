"""A broken plugin stops start-up with a message that names it, and config can switch it off.

Installed plugins are real distributions here: a ``*.dist-info`` directory with an
``entry_points.txt`` and a module beside it, put on ``sys.path``, which is what pip leaves
behind. The gateway loads them through ``importlib.metadata`` as in production.
"""

from __future__ import annotations

import shutil
import sys
import textwrap

import pytest
from click.testing import CliRunner

from gateway import Service, create_app, hookimpl
from gateway.cli import main
from gateway.errors import StartupError
from gateway.plugins import PluginError
from gateway.settings import ConfigError
from tests.conftest import CONFIG_DIR, SERVICE_PLUGINS

GOOD_SERVICE = '''
from marshmallow import RAISE, Schema, fields
from gateway import Service, hookimpl


class Body(Schema):
    class Meta:
        unknown = RAISE

    word = fields.String(required=True)


class Settings(Schema):
    class Meta:
        unknown = RAISE

    greeting = fields.String(load_default="halo")


class WordService(Service):
    name = "{name}"
    title = "Words"
    request_schema = Body
    config_schema = Settings


@hookimpl
def register_services():
    return [WordService()]
'''


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(entry_name, source)``: a distribution ``<entry_name>-plugin`` whose
    ``gateway`` entry point ``entry_name`` is a module with ``source``."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules = []

    def make(entry_name: str, source: str) -> None:
        module = f"installed_{entry_name}"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{entry_name}_plugin-0.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {entry_name}-plugin\n"
                                       "Version: 0.3\n")
        (info / "entry_points.txt").write_text(f"[gateway]\n{entry_name} = {module}\n")
        modules.append(module)

    yield make
    for module in modules:
        sys.modules.pop(module, None)


@pytest.fixture
def config_dir(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    return config


@pytest.fixture
def build(tmp_path, config_dir, gateway_redis_url):
    """Build an app from the installed entry points, as ``gateway serve`` does."""
    built = []

    def make(**overrides):
        app = create_app({"config_dir": str(config_dir), "data_dir": str(tmp_path / "data"),
                          "database_url": f"sqlite:///{tmp_path / 'gw.db'}",
                          "redis_url": gateway_redis_url, **overrides})
        built.append(app)
        return app.extensions["gateway"]

    yield make
    for app in built:
        app.extensions["gateway"].db.dispose()


def disable_in_gateway_yaml(config_dir, *names):
    gateway_yaml = config_dir / "gateway.yaml"
    gateway_yaml.write_text(gateway_yaml.read_text()
                            + f"\nplugins:\n  disabled: [{', '.join(names)}]\n")


def test_a_plugin_that_cannot_be_imported_is_named_with_its_distribution(install, build):
    install("broken", "import no_such_module_anywhere\n")
    with pytest.raises(PluginError) as error:
        build()
    message = str(error.value)
    assert message.startswith("plugin 'broken' (broken-plugin 0.3) failed: it could not be "
                              "loaded (ModuleNotFoundError: No module named "
                              "'no_such_module_anywhere')")
    assert "`plugins: {disabled: [broken]}` in gateway.yaml" in message
    assert "GATEWAY_DISABLED_PLUGINS=broken" in message
    assert error.value.plugin == "broken" and error.value.hook is None


def test_a_broken_plugin_disabled_in_gateway_yaml_is_not_loaded(install, build, config_dir):
    install("broken", "raise RuntimeError('half-installed')\n")
    disable_in_gateway_yaml(config_dir, "broken")
    gateway = build()
    assert {"medicine_delivery", "umkm_pickup", "tourism_transport"} <= set(gateway.services)
    assert gateway.pm.is_blocked("broken")


def test_a_broken_plugin_can_be_disabled_from_the_environment(install, build, monkeypatch):
    install("broken", "raise RuntimeError('half-installed')\n")
    monkeypatch.setenv("GATEWAY_DISABLED_PLUGINS", "someother, broken")
    assert "medicine_delivery" in build().services


def test_a_register_hook_that_raises_is_named_with_the_hook(install, build):
    install("exploding", """
        from gateway import hookimpl

        @hookimpl
        def register_couriers():
            raise KeyError("GOSEND_TOKEN")
        """)
    with pytest.raises(PluginError) as error:
        build()
    assert str(error.value).startswith("plugin 'exploding' failed in hook register_couriers: "
                                       "KeyError: 'GOSEND_TOKEN'.")
    assert (error.value.plugin, error.value.hook) == ("exploding", "register_couriers")


def test_a_plugin_registered_as_an_object_is_named_by_its_class(make_app):
    class ExplodingPlugin:
        @hookimpl
        def register_services(self):
            raise RuntimeError("no database")

    with pytest.raises(PluginError, match=r"^plugin 'ExplodingPlugin object' failed in hook "
                                          r"register_services: RuntimeError: no database"):
        make_app(plugins=[*SERVICE_PLUGINS, ExplodingPlugin()])


def test_a_register_hook_that_returns_no_list_is_named(make_app):
    class Careless:
        @hookimpl
        def register_services(self):
            return "medicine"

    with pytest.raises(PluginError, match="'Careless object' failed in hook "
                                          "register_services: it returned str, not a list"):
        make_app(plugins=[Careless()])


def test_a_service_with_an_invalid_name_is_blamed_on_its_plugin(make_app):
    class Nameless(Service):
        name = "Not A Name"
        title = "x"

    class Plugin:
        @hookimpl
        def register_services(self):
            return [Nameless()]

    with pytest.raises(PluginError, match="'Plugin object' failed in hook register_services: "
                                          "a service has an invalid name: 'Not A Name'"):
        make_app(plugins=[Plugin()])


def test_a_misspelt_hook_is_named(install, build):
    install("typo", """
        from gateway import hookimpl

        @hookimpl
        def register_service():
            return []
        """)
    with pytest.raises(PluginError) as error:
        build()
    assert "plugin 'typo' (typo-plugin 0.3) failed" in str(error.value)
    assert "it implements 'register_service', which is not a hook of the gateway" \
        in str(error.value)


def test_invalid_settings_of_a_plugin_name_file_and_key_and_disabling_it_starts(
        install, build, config_dir):
    install("words", GOOD_SERVICE.format(name="words"))
    services_yaml = config_dir / "services.yaml"
    services_yaml.write_text(services_yaml.read_text() + "\nwords:\n  greeting: [1, 2]\n")
    with pytest.raises(ConfigError) as error:
        build()
    assert f"{services_yaml}: words.greeting: Not a valid string." in str(error.value)
    disable_in_gateway_yaml(config_dir, "words")
    gateway = build()
    assert "words" not in gateway.services and "medicine_delivery" in gateway.services


def test_an_installed_plugin_that_works_is_loaded_with_its_distribution(install, build):
    install("words", GOOD_SERVICE.format(name="words"))
    gateway = build()
    assert gateway.services["words"].title == "Words"
    assert gateway.pm.get_plugin("words") is not None
    from gateway.plugins import describe_plugins

    words = next(p for p in describe_plugins(gateway.pm) if p["name"] == "words")
    assert (words["distribution"], words["version"]) == ("words-plugin", "0.3")


def test_the_cli_reports_a_broken_plugin_in_one_line_without_a_traceback(
        install, config_dir, tmp_path, monkeypatch, gateway_redis_url):
    install("broken", "import no_such_module_anywhere\n")
    monkeypatch.setenv("GATEWAY_CONFIG", str(config_dir))
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'gw.db'}")
    monkeypatch.setenv("GATEWAY_REDIS_URL", gateway_redis_url)
    for command in (["plugins"], ["config", "check"]):
        result = CliRunner().invoke(main, command, catch_exceptions=False)
        assert result.exit_code == 2, result.output
        assert "plugin 'broken' (broken-plugin 0.3) failed: it could not be loaded" \
            in result.output
        assert "Traceback" not in result.output
    disable_in_gateway_yaml(config_dir, "broken")
    result = CliRunner().invoke(main, ["plugins"], catch_exceptions=False)
    assert result.exit_code == 0 and "broken" not in result.output


def test_plugins_disabled_must_be_a_list_of_names(build, config_dir):
    (config_dir / "gateway.yaml").write_text("plugins:\n  disabled: broken\n")
    with pytest.raises(ConfigError, match=r"gateway.yaml: plugins.disabled: Not a valid list"):
        build()


def test_duplicate_names_say_which_plugins(make_app):
    class Again:
        @hookimpl
        def register_services(self):
            return [SERVICE_PLUGINS[0].MedicineDeliveryService()]

    with pytest.raises(StartupError, match="two plugins register a service named "
                                           "'medicine_delivery': 'Again object' and "
                                           "'plugins.medicine_delivery'"):
        make_app(plugins=[*SERVICE_PLUGINS, Again()])


class RaisesWhenAsked:
    """A plugin whose permission hook breaks while the gateway runs."""

    @hookimpl
    def permission_allowed(self, actor, action, resource):
        if action == "services:list":
            raise RuntimeError("this plugin is broken")


def test_a_hook_that_raises_during_a_request_is_blamed_on_its_plugin(make_app, caplog):
    from gateway.plugins import HOOK_FAILURES
    from tests.conftest import SERVICE_PLUGINS, bearer, new_key
    from tests.console.conftest import sign_in

    broken = RaisesWhenAsked()
    app = make_app(plugins=[*SERVICE_PLUGINS, broken])
    key = new_key(app)
    response = app.test_client().get("/api/v1/services", headers=bearer(key))
    assert response.status_code == 500 and response.get_json()["code"] == "internal_error"
    assert "this plugin is broken" not in response.get_data(as_text=True)
    assert any("plugin RaisesWhenAsked" in r.getMessage()
               and "failed in hook permission_allowed" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert "RaisesWhenAsked" in HOOK_FAILURES[-1][1]
    assert HOOK_FAILURES[-1][2] == "permission_allowed"
    page = sign_in(app, "admin").get("/console/services").get_data(as_text=True)
    assert 'id="hook-failures"' in page and "permission_allowed" in page
