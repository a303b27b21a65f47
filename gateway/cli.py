"""The ``gateway`` command (click, as Flask's own CLI).

A plain click group rather than Flask's ``FlaskGroup``: that one builds the app before every
command, which ``config check`` must not do. Every subcommand builds the app the same way
(``create_app()`` from ``$GATEWAY_CONFIG``); a configuration problem is printed as
``file: key.path: reason`` and exits with status 2, never as a traceback. No secret is ever
printed except the key that a command has just created, once.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager

import click

from .errors import GatewayError, StartupError
from .settings import ConfigError, default_config_dir, load_settings


def build_app():
    from .app import create_app

    try:
        return create_app()
    except (ConfigError, StartupError) as exc:
        click.echo(f"The gateway cannot start: {exc}", err=True)
        sys.exit(2)


@contextmanager
def opened_gateway():
    """The gateway of a freshly built app, its database connections closed afterwards."""
    gateway = build_app().extensions["gateway"]
    try:
        yield gateway
    finally:
        gateway.db.dispose()


def _services(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="banyuwangi-gateway")
def main():
    """Public-service integration gateway: agencies ask, courier providers carry."""


@main.command()
@click.option("--workers", default=2, show_default=True,
              help="rq worker processes (two: a worker waits on Redis, the database and the "
                   "couriers much of its time, so two keep even a 2-core machine busy).")
@click.option("--web-workers", type=click.IntRange(1, 64), default=None,
              help="API server processes [default: 2].")
@click.option("--web-threads", type=click.IntRange(1, 256), default=None,
              help="Threads per API server process [default: 8].")
def up(workers, web_workers, web_threads):
    """Run everything on this machine: database, Redis, API server and worker."""
    from .redis_server import RedisNotFound
    from .runner import run_all_in_one

    try:
        status = run_all_in_one(build_app, workers=workers, web_workers=web_workers,
                                web_threads=web_threads)
    except RedisNotFound as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(status)


@main.command()
@click.option("--workers", default=2, show_default=True, help="API server processes.")
@click.option("--threads", default=8, show_default=True,
              help="Threads per process: requests a process serves at once (their new "
                   "requests are stored together: gateway.group_commit).")
def serve(workers, threads):
    """Serve the API with gunicorn on GATEWAY_HOST:GATEWAY_PORT."""
    from .serving import serve as run_server

    app = build_app()
    run_server(app, workers=workers, threads=threads)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--fork", is_flag=True, help="Run each job in a forked child (rq's Worker).")
@click.option("--no-sweep", is_flag=True, help="Do not run the periodic sweep here.")
@click.option("--queue", "queues", multiple=True,
              help="Only these queues (repeatable); 'callbacks' alone: callback workers only.")
@click.option("--callback-workers", type=click.IntRange(0, 64), default=None,
              help="Callback deliveries at once, in threads beside the main worker "
                   "[default: callbacks.workers].")
def worker(burst, fork, no_sweep, queues, callback_workers):
    """Run an rq worker for the gateway's queues, and callback workers beside it."""
    from .worker import run_worker

    try:
        run_worker(build_app(), burst=burst, fork=fork, sweep=not no_sweep,
                   queues=list(queues) or None, callback_workers=callback_workers)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


@main.group()
def simulator():
    """Courier simulators, for sandbox mode and tests."""


@simulator.command("run")
@click.argument("courier")
@click.option("--webhook-url", default=None, help="Where to send webhooks.")
@click.option("--step-seconds", default=3.0, show_default=True,
              envvar="GATEWAY_SIMULATOR_STEP_SECONDS",
              help="Simulated time between two statuses of a booking.")
def simulator_run(courier, webhook_url, step_seconds):
    """Serve the simulator of COURIER (a sandbox entry of couriers.yaml or notifiers.yaml)
    on its base_url."""
    import importlib
    import signal
    from urllib.parse import urlsplit

    from werkzeug.serving import make_server

    from .runner import simulator_entry
    from .simulators.engine import QuietProbeHandler

    with opened_gateway() as gateway:
        config, adapter, _path = simulator_entry(gateway, courier) or (None, None, None)
    if not config or not config["sandbox"] or adapter is None or not adapter.simulator:
        raise click.ClickException(f"{courier!r} is not a sandbox entry of an adapter that "
                                   "has a simulator")
    module, _, name = adapter.simulator.partition(":")
    simulator_class = getattr(importlib.import_module(module), name)
    sim = simulator_class.from_config(config, webhook_url=webhook_url,
                                      step_seconds=step_seconds)
    address = urlsplit(config["base_url"])
    server = make_server(address.hostname, address.port or 80, sim.create_app(), threaded=True,
                         request_handler=QuietProbeHandler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sim.start_clock()
    click.echo(f"{adapter.name} simulator for {courier} on {config['base_url']}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop_clock()
        server.server_close()


@main.command()
def sweep():
    """Re-enqueue owed work that Redis does not hold (what workers do periodically)."""
    from .sweep import sweep_once

    with opened_gateway() as gateway:
        count = sweep_once(gateway)
    click.echo(f"re-enqueued {count} job(s)")


@main.command()
def purge():
    """Remove the personal data of ended requests past their retention (workers do this
    periodically)."""
    from .purge import purge_expired

    with opened_gateway() as gateway:
        count = purge_expired(gateway)
    click.echo(f"purged personal data of {count} request(s)")


@main.group()
def agencies():
    """Agencies that call the API."""


@agencies.command("create")
@click.argument("name")
@click.option("--services", required=True, help="Comma-separated service names.")
@click.option("--callback-url", default=None, help="Where status changes are POSTed.")
@click.option("--test", "test_key", is_flag=True, help="Make the first key a test key.")
@click.option("--role", "roles", multiple=True, help="Extra role, e.g. fleet_dispatch.")
def agencies_create(name, services, callback_url, test_key, roles):
    """Create an agency; print its id and its first API key (shown once)."""
    from .agencies import create_agency, reveal_callback_secret

    try:
        with opened_gateway() as gateway:
            agency, key = create_agency(gateway, name, _services(services), callback_url,
                                        key_type="test" if test_key else "live",
                                        roles=list(roles))
            secret = reveal_callback_secret(gateway, agency.id) if callback_url else None
    except GatewayError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"agency id: {agency.id}")
    click.echo(f"api key:   {key}")
    if secret:
        click.echo(f"callback secret: {secret}")
    click.echo("The key is shown once; store it now.", err=True)


@agencies.command("callback-secret")
@click.argument("agency")
def agencies_callback_secret(agency):
    """Print the secret AGENCY verifies callback signatures with (the read is audited)."""
    from .agencies import reveal_callback_secret

    try:
        with opened_gateway() as gateway:
            click.echo(reveal_callback_secret(gateway, agency))
    except GatewayError as exc:
        raise click.ClickException(str(exc)) from None


@agencies.command("list")
def agencies_list():
    """List agencies with their services and active keys (prefixes only)."""
    from sqlalchemy import select

    from .models import Agency

    with opened_gateway() as gateway, gateway.db.read() as session:
        for agency in session.execute(select(Agency).order_by(Agency.name)).scalars():
            keys = [f"{k.prefix} ({k.key_type})" for k in agency.keys if k.revoked_at is None]
            click.echo(f"{agency.id}  {agency.name}  services={','.join(agency.services)}  "
                       f"keys={', '.join(keys) or 'none'}")


@main.group()
def admins():
    """People who sign in to the console."""


@admins.command("create")
@click.argument("username")
@click.option("--role", required=True,
              type=click.Choice(["admin", "operator", "auditor", "agency_staff",
                                 "agency_manager"]),
              help="admin: everything; operator: requests and fleet; auditor: read only; "
                   "agency_staff: one agency's requests, and new ones by form; "
                   "agency_manager: also that agency's staff.")
@click.option("--agency", default=None,
              help="For agency_staff and agency_manager: the agency's id or name.")
@click.option("--test", "test_key", is_flag=True,
              help="For an agency role: see the agency's test world (as its test keys do).")
@click.option("--password-env", default="GATEWAY_ADMIN_PASSWORD", show_default=True,
              help="Environment variable to read the password from (for automation); "
                   "when it is not set the password is asked for.")
@click.option("--language", default="id", type=click.Choice(["id", "en"]), show_default=True)
def admins_create(username, role, password_env, language, agency, test_key):
    """Create a console user USERNAME with a role (an agency role with --agency)."""
    from .console.users import AdminUserError, create_admin

    password = os.environ.get(password_env)
    if not password:
        if not sys.stdin.isatty():
            raise click.ClickException(f"no password: set {password_env} or run in a terminal")
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with opened_gateway() as gateway:
            create_admin(gateway, username, password, role, language=language, agency=agency,
                         key_type="test" if test_key else "live")
    except AdminUserError as exc:
        raise click.ClickException(str(exc)) from None
    where = f" of agency {agency} ({'test' if test_key else 'live'})" if agency else ""
    click.echo(f"console user {username} created with role {role}{where}")


@admins.command("list")
def admins_list():
    """List console users and their roles."""
    from .console.users import list_admins

    with opened_gateway() as gateway:
        for user in list_admins(gateway):
            state = "active" if user.active else "disabled"
            agency = f"  agency {user.agency_id} {user.key_type}" if user.agency_id else ""
            click.echo(f"{user.username}  {user.role}  {state}{agency}")


@main.group()
def keys():
    """Agency API keys."""


@keys.command("issue")
@click.argument("agency")
@click.option("--test", "test_key", is_flag=True, help="A test key: sandbox couriers only.")
def keys_issue(agency, test_key):
    """Issue another key to AGENCY (its id or name); print it once."""
    from .agencies import issue_key

    try:
        with opened_gateway() as gateway:
            key = issue_key(gateway, agency, "test" if test_key else "live")
    except GatewayError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(key)


@keys.command("revoke")
@click.argument("key_prefix")
def keys_revoke(key_prefix):
    """Revoke the key whose prefix (gw_live_XXXXXXXXXX) is KEY_PREFIX."""
    from .agencies import revoke_key

    try:
        with opened_gateway() as gateway:
            revoke_key(gateway, key_prefix)
    except GatewayError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {key_prefix}")


@main.group()
def audit():
    """The audit trail."""


@audit.command("verify")
def audit_verify():
    """Walk the hash chain and check it against the signed checkpoints; name the first record
    that cannot be trusted."""
    from .checkpoints import CheckpointPaths, verify_anchored

    with opened_gateway() as gateway, gateway.db.read() as session:
        result = verify_anchored(session, CheckpointPaths.from_settings(gateway.settings))
    if not result.ok:
        where = f"at record {result.first_bad_seq}" if result.first_bad_seq else "checkpoints"
        click.echo(f"audit chain BROKEN {where}: {result.reason} "
                   f"({result.checked} record(s) before it verified)", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {result.checked} record(s) verified")
    if result.checkpoints:
        click.echo(f"anchored up to record {result.anchored_seq} by {result.checkpoints} "
                   f"signed checkpoint(s); {result.checked - result.anchored_seq} record(s) "
                   "after it are not anchored yet")
    else:
        click.echo("no signed checkpoints yet: only the chain itself was checked", err=True)


@audit.command("checkpoint")
@click.option("--every", type=click.IntRange(min=1), default=None,
              help="Keep running, writing a checkpoint every this many seconds.")
def audit_checkpoint(every):
    """Sign the chain's head and append it to the checkpoint file (workers do this
    periodically unless audit.checkpoint_in_worker is false)."""
    import time

    from .checkpoints import CheckpointError, write_checkpoint

    with opened_gateway() as gateway:
        while True:
            try:
                written = write_checkpoint(gateway)
            except CheckpointError as exc:
                click.echo(f"audit checkpoint NOT written: {exc}", err=True)
                if every is None:
                    sys.exit(1)
            else:
                click.echo(f"checkpoint of record {written.seq} written" if written
                           else "no new records since the last checkpoint")
            if every is None:
                return
            time.sleep(every)


@main.group()
def identifiers():
    """Keyed digests of personal identifiers, for lists kept in settings."""


@identifiers.command("digest")
@click.argument("source", type=click.File("r"), default="-")
def identifiers_digest(source):
    """Print the keyed digest of each line of SOURCE (default: standard input) as a YAML list
    item, for an allow-list in a service's settings (a NIK eligibility list, say). The
    digests are keyed by this deployment's key material: make them where the gateway runs."""
    values = [line.strip() for line in source if line.strip()]
    with opened_gateway() as gateway:
        for value in values:
            click.echo(f"- {gateway.identifiers.digest(value)}")
    click.echo(f"{len(values)} digest(s)", err=True)


@main.group()
def config():
    """Configuration."""


@config.command("check")
def config_check():
    """Validate the configuration (core, services, couriers) without starting anything."""
    from .core import Gateway

    config_dir = default_config_dir()
    problems: list = []
    try:
        settings = load_settings(config_dir)
    except ConfigError as exc:
        problems.extend(exc.problems)
        settings = exc.settings
    try:
        if settings is not None:
            Gateway.validate_only(settings)
    except ConfigError as exc:
        problems.extend(exc.problems)
    except StartupError as exc:
        click.echo(f"the plugins cannot start: {exc}", err=True)
        sys.exit(2)
    if problems:
        click.echo(f"configuration in {config_dir} is NOT valid:\n{ConfigError(problems)}",
                   err=True)
        sys.exit(2)
    click.echo(f"configuration in {config_dir} is valid")


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins(ctx, as_json):
    """Installed plugins with their versions and hooks; `plugins new` starts a new one."""
    if ctx.invoked_subcommand is not None:
        return
    from .plugins import describe_plugins

    with opened_gateway() as gateway:
        described = describe_plugins(gateway.pm)
        services, couriers = sorted(gateway.services), sorted(gateway.courier_classes)
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for plugin in described:
        origin = "core" if plugin["default"] else (plugin["distribution"] or "local")
        click.echo(f"{plugin['name']}  {plugin['version'] or '-'}  [{origin}]  "
                   f"hooks: {', '.join(plugin['hooks'])}")
    click.echo(f"services: {', '.join(services) or 'none'}")
    click.echo(f"couriers: {', '.join(couriers) or 'none'}")


@plugins.command("new")
@click.argument("name")
@click.option("--directory", type=click.Path(file_okay=False), default=None,
              help="Where to write it (default: ./gateway-NAME, with dashes).")
@click.option("--title", default=None, help="The service's title, shown to agencies.")
@click.option("--description", default=None, help="One sentence on what the service does.")
@click.option("--kind", type=click.Choice(["service", "notifier"]), default="service",
              show_default=True, help="A public service, or a notifier (a channel for "
                                      "citizen notices, like WhatsApp or SMS).")
def plugins_new(name, directory, title, description, kind):
    """Start a plugin NAME: a package with its entry point, a service (or a notifier: adapter,
    mapping, simulator), README and tests that pass as generated. Needs no configuration and
    builds no app."""
    from .scaffold import ScaffoldError, create_plugin

    try:
        created = create_plugin(name, directory, title=title, description=description,
                                kind=kind)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {created.directory}/ with:")
    for path in created.files:
        click.echo(f"  {path}")
    click.echo("next:\n"
               f"  cd {created.directory}\n"
               "  pip install -e .      # in the gateway's environment\n"
               "  python -m pytest      # the tests use the gateway's pytest plugin")


@main.group()
def db():
    """The database."""


@db.command("upgrade")
def db_upgrade():
    """Apply schema migrations up to the newest."""
    from .migrate import current_revision, upgrade

    with opened_gateway() as gateway:
        upgrade(gateway.db)
        click.echo(f"database at revision {current_revision(gateway.db)}")


if __name__ == "__main__":  # pragma: no cover
    main()
