"""Turn each protection off, one at a time, and check that the test guarding it then fails.

A test that still passes with its protection removed proves nothing; this runs every
mutation below in a throwaway copy of the tree and reports which ones the suite caught::

    .venv/bin/python -m tests.reliability.mutations            # all of them
    .venv/bin/python -m tests.reliability.mutations csrf audit # some, by name

Exit status 0 only if every mutation made its tests fail. Not part of CI (each mutation
runs pytest once, a few minutes in all); the last results are in docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutation:
    name: str
    protection: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation("csrf", "CSRF token on every console form", "gateway/console/__init__.py",
             "bp.before_request(_check_csrf)", "pass",
             ("tests/console/test_sign_in.py::"
              "test_a_form_posted_without_its_csrf_token_is_refused",)),
    Mutation("console-roles", "a console role may only do what it is allowed",
             "gateway/console/__init__.py", "            if not can(action):",
             "            if False:",
             ("tests/reliability/test_access_matrix.py::"
              "test_each_caller_gets_what_the_matrix_says[console.create_agency_view]",)),
    Mutation("agency-scope", "an agency reads only its own requests",
             "gateway/records.py",
             'return and_(ServiceRequest.agency_id == actor["id"],',
             "return and_(ServiceRequest.agency_id == ServiceRequest.agency_id,",
             # get and cancel also ask permission (a second line); the list has only the scope
             ("tests/gateway/test_api_v1.py", "tests/reliability/test_access_matrix.py")),
    Mutation("console-agency-scope", "agency staff see only their agency's requests",
             "gateway/console/agency_actor.py",
             "        return query.where(owned_by(_world(actor)))",
             "        return query",
             ("tests/console/test_agency_staff.py::"
              "test_staff_of_a_sees_a_requests_only_in_list_detail_and_search",)),
    Mutation("console-agency-detail", "agency staff open only their agency's requests",
             "gateway/console/agency_actor.py", "    if is_agency(actor):\n        return get",
             "    if False:\n        return get",
             ("tests/reliability/test_access_matrix.py::"
              "test_each_caller_gets_what_the_matrix_says[console.request_detail]",)),
    Mutation("manager-reach", "an agency manager manages only its own agency's staff",
             "gateway/console/agency_actor.py",
             '        return actor["agency_id"] == agency_id', "        return True",
             ("tests/console/test_agency_staff.py::"
              "test_manager_cannot_raise_roles_touch_other_agencies_or_admins",)),
    Mutation("key-type-scope", "a test key never sees a live request, and back",
             "gateway/records.py",
             '                ServiceRequest.key_type == actor["key_type"])',
             "                ServiceRequest.key_type == ServiceRequest.key_type)",
             ("tests/gateway/test_key_types.py",)),
    Mutation("session-renewal", "sign-in ends the session that came before",
             "gateway/console/auth.py", "    sessions.end(gateway.redis, old_sid)\n", "",
             ("tests/console/test_sign_in.py::"
              "test_sign_in_starts_a_new_session_whatever_cookie_came_before",)),
    Mutation("login-throttle", "sign-in attempts are throttled", "gateway/console/throttle.py",
             '    """Count one sign-in attempt before its password is checked.\n',
             '    """Mutated."""\n    return None\n    """\n',
             ("tests/console/test_sign_in.py::"
              "test_wrong_passwords_are_throttled_even_before_the_right_one",
              "tests/console/test_sign_in_throttle.py")),
    Mutation("login-throttle-pair", "sign-in failures count per (username, address)",
             "gateway/console/throttle.py",
             '    pair = hashlib.sha256(f"{username.lower()}\\0{address}".encode()).hexdigest()',
             '    pair = hashlib.sha256(username.lower().encode()).hexdigest()',
             ("tests/console/test_sign_in_throttle.py::"
              "test_an_attackers_failures_do_not_lock_the_admin_out_at_her_own_desk",)),
    Mutation("failed-keys", "wrong API keys limited per client address", "gateway/gate.py",
             "        wait = gateway.failed_keys.wait(source)",
             "        wait = None",
             ("tests/gateway/test_ratelimit.py",)),
    Mutation("known-key-held", "a known key from a held-back address is held back too",
             "gateway/gatelook.py",
             "if failures >= tonumber(ARGV[1]) then", "if false then",
             ("tests/gateway/test_ratelimit.py",)),
    Mutation("revoked-no-token", "a revoked key spends no token of its agency's",
             "gateway/gatelook.py",
             "if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[2] then",
             "take(KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))\n"
             "if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[2] then",
             ("tests/gateway/test_ratelimit.py",)),
    Mutation("pin-count", "PIN attempts counted before the PIN is compared", "gateway/fleet.py",
             "                   ServiceRequest.pin_failures < MAX_PIN_FAILURES)",
             ")",
             ("tests/gateway/couriers/own_fleet/test_own_fleet.py",)),
    Mutation("key-trust", "a cached API key is trusted for at most a second", "gateway/auth.py",
             "TRUST_SECONDS = 1.0", "TRUST_SECONDS = 300.0",
             ("tests/gateway/test_auth_cache.py",)),
    Mutation("security-headers", "console security headers", "gateway/console/__init__.py",
             '    response.headers["Content-Security-Policy"] = _content_security_policy()',
             "    return response",
             ("tests/console/test_sign_in.py::test_console_pages_carry_the_security_headers",)),
    Mutation("rate-limit", "token bucket per agency and key type", "gateway/ratelimit.py",
             '        """Take a token. :return: None when allowed, else seconds to wait."""',
             '        """Mutated."""\n        return None',
             ("tests/gateway/test_ratelimit.py",)),
    Mutation("body-limit", "413 for oversized bodies", "gateway/app.py",
             '    app.config["MAX_CONTENT_LENGTH"] = settings["api"]["max_body_bytes"]', "",
             ("tests/gateway/test_api_v1.py::test_an_oversized_body_is_refused_with_413",)),
    Mutation("webhook-auth", "webhooks verified before they are stored",
             "gateway/couriers/gosend/adapter.py",
             '        check_static_secret(headers, self.config["webhook_header"], '
             'self.config["webhook_token"])', "        pass",
             ("tests/gateway/couriers/gosend/test_gosend.py::"
              "test_a_webhook_with_a_wrong_token_is_refused_and_changes_nothing",)),
    Mutation("audit-chain", "an edited audit record is named by verify", "gateway/audit.py",
             "        if link_hash(prev_hash, record_fields(record)) != record.hash:",
             "        if False:",
             ("tests/gateway/test_audit.py::test_an_edited_record_is_caught_at_that_record",)),
    Mutation("db-503", "a database outage answers 503, not 500", "gateway/api/errors.py",
             "    if is_outage(exc):", "    if False:",
             ("tests/reliability/test_database_outage.py",)),
    Mutation("encryption", "personal data encrypted at rest", "gateway/crypto.py",
             # sealing writes plain JSON, opening reads it (the app still works)
             "        return self._fernet.encrypt(text.encode())\n\n"
             "    def _decrypt(self, token: bytes) -> bytes:\n"
             "        return self._fernet.decrypt(token)",
             "        return text.encode()\n\n"
             "    def _decrypt(self, token: bytes) -> bytes:\n"
             "        return token",
             ("tests/reliability/test_personal_data.py",)),
    Mutation("masking", "personal data masked for roles that may not read it",
             "gateway/console/masking.py", "def masked(value: Any) -> Any:\n",
             "def masked(value: Any) -> Any:\n    return value\n",
             ("tests/console/test_requests_pages.py::"
              "test_personal_data_is_masked_for_an_auditor_and_shown_on_demand_to_an_operator",)),
    Mutation("reconcile", "a booking whose answer was lost is looked up, never rebooked",
             "gateway/dispatch.py",
             '    """Resolve attempts whose answer never came. :return: a result if one was '
             'booked."""',
             '    """Mutated."""\n    return None',
             ("tests/reliability/test_provider_outages.py::"
              "test_requests_keep_moving_through_a_provider_outage_and_come_back_after[timeout]",)),
    Mutation("circuit", "the circuit opens on a failing provider", "gateway/couriers/circuit.py",
             "                if outcome.outcome == \"ok\" and outcome.operation in "
             "self.closing_operations:", "                if outcome.outcome == \"ok\":",
             ("tests/reliability/test_provider_outages.py::"
              "test_requests_keep_moving_through_a_provider_outage_and_come_back_after[5xx]",)),
    Mutation("circuit-count", "a circuit's failure count always expires",
             "gateway/ratelimit.py",
             "        count, _left_ms = self._script(keys=[key], "
             "args=[max(1, int(window_seconds * 1000))])\n",
             "        client = self._script.registered_client\n"
             "        count = client.incr(key)\n"
             "        if count == 1:\n"
             "            client.expire(key, max(1, int(window_seconds)))\n",
             ("tests/gateway/couriers/test_circuit.py",)),
    Mutation("report-savepoint", "a report rolled back in its chunk takes its after-commit "
             "work with it", "gateway/db.py",
             "            del items[length:]               # in place: after-commit steps hold "
             "the list\n",
             "            pass\n",
             ("tests/gateway/test_report_batches.py::"
              "test_a_report_failing_mid_chunk_is_undone_alone_with_its_after_commit_work",
              "tests/gateway/test_db.py::"
              "test_a_failed_savepoint_takes_back_only_its_own_after_commit_work_and_audit_events")),
    Mutation("lost-jobs", "a job a killed worker held is run again", "gateway/queues.py",
             "    status = job.get_status(refresh=False)\n",
             "    return False\n",
             ("tests/gateway/test_lost_jobs.py", "tests/reliability/test_worker_crashes.py")),
    Mutation("error-shape", "every error is the documented JSON shape", "gateway/api/errors.py",
             '    return error_response(status, HTTP_CODES.get(status, f"http_{status}"), '
             "message,\n                          headers=headers)\n",
             "    return exc  # werkzeug's own HTML page\n",
             ("tests/reliability/test_api_fuzz.py", "tests/gateway/test_invariants.py")),
    Mutation("sweep", "the sweep re-enqueues owed work Redis lost", "gateway/sweep.py",
             "            if enqueue_job(gateway, kind, target, rate_limit=limit):",
             "            if False:",
             ("tests/reliability/test_redis_lost.py",)),
    Mutation("secret-references", "a setting reads a variable or a file only if secret",
             "gateway/references.py",
             "        elif not is_secret_field(field) and value != before:\n",
             "        elif False:\n",
             ("tests/console/test_settings_secrets.py::"
              "test_a_reference_in_a_plain_service_field_is_refused_at_that_field",)),
    Mutation("secrets-hidden", "a secret is never shown back, in a form or a diff",
             "gateway/liveconfig.py", "    if path in hide and data is not None:\n",
             "    if False:\n",
             ("tests/console/test_settings_secrets.py::"
              "test_a_secret_declared_only_by_its_schema_never_shows_even_in_the_history",)),
    Mutation("courier-hosts", "couriers call only the origins of courier_hosts",
             "gateway/origins.py", "    if sandbox and is_loopback(origin):\n",
             "    if True:\n",
             ("tests/gateway/test_courier_hosts.py::"
              "test_a_live_entry_pointing_anywhere_but_a_listed_host_stops_start_up",)),
    Mutation("webhook-body", "webhook bodies checked before parsing", "gateway/api/webhooks.py",
             '        check_body(raw, limits["max_depth"])\n', "",
             ("tests/gateway/test_webhook_abuse.py::"
              "test_bodies_no_provider_sends_are_refused_before_parsing",)),
    Mutation("webhook-sources", "a source of refused webhooks is made to wait",
             "gateway/ratelimit.py",
             '        """Seconds ``source`` must wait, or None if it may try now."""',
             '        """Mutated."""\n        return None',
             ("tests/gateway/test_webhook_abuse.py::"
              "test_a_source_that_keeps_forging_is_told_to_wait_and_genuine_reports_are_not",)),
    Mutation("inbox-fit", "a report's values fitted to the inbox, originals kept",
             "gateway/inbox.py",
             '    """``event`` with values its inbox row can hold (see the module docstring); '
             '``event``\n    itself when it fits already."""',
             '    """Mutated."""\n    return event',
             ("tests/gateway/test_webhook_abuse.py::"
              "test_a_signed_report_with_values_of_the_wrong_shape_is_stored_once",)),
    Mutation("path-segments", "a provider's order number stays one URL path segment",
             "gateway/couriers/gosend/mapping.py",
             "    return f\"{BOOKING_PATH}/orderno/{quote(order_no, safe='')}\"",
             "    return f\"{BOOKING_PATH}/orderno/{order_no}\"",
             ("tests/gateway/couriers/test_path_values.py",)),
    # (Cutting PostgreSQL's own detail, ``_without_values``, is caught by the same tests
    # on PostgreSQL: ``scripts/test tests/gateway/test_db.py``.)
    Mutation("sql-parameters", "database errors carry no statement parameters",
             "gateway/db.py", '"hide_parameters": True', '"hide_parameters": False',
             ("tests/gateway/test_db.py::"
              "test_a_failing_statement_leaves_no_parameter_in_the_logs",)),
    Mutation("fleet-read-audit", "reading the fleet board's personal data is audited",
             "gateway/console/views/fleet.py", "    elif jobs:", "    elif False:",
             ("tests/console/test_fleet_and_agencies_pages.py::"
              "test_every_look_at_names_and_addresses_on_the_board_is_audited",)),
    Mutation("docs-csp", "the API docs page sends a strict Content-Security-Policy",
             "gateway/api/openapi.py", "    response.headers.update(docs_page_headers(nonce))\n",
             "",
             ("tests/gateway/test_openapi.py::"
              "test_the_docs_page_forbids_scripts_framing_and_outside_resources",)),
    Mutation("worker-reconnects", "a worker outlives a Redis restart", "gateway/worker.py",
             "                if burst or worker.stop_signalled:",
             "                if True:",
             ("tests/reliability/test_worker_rides_out_redis_restart.py",)),
    Mutation("port-taken", "gateway up does not claim a port another process holds",
             "gateway/runner.py", "        if taken:", "        if False:",
             ("tests/test_quickstart.py::"
              "test_gateway_up_on_a_port_another_process_holds_fails_and_says_so",)),
)


def _copy_tree(target: Path) -> None:
    ignore = shutil.ignore_patterns(".venv", ".git", "data", "build", "__pycache__",
                                    ".pytest_cache", ".ruff_cache", "*.egg-info")
    shutil.copytree(ROOT, target, ignore=ignore)


def run(mutation: Mutation) -> tuple[bool, float, str]:
    """:return: (caught, seconds, last line of pytest's output)"""
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        tree = Path(tmp) / "tree"
        _copy_tree(tree)
        path = tree / mutation.file
        source = path.read_text()
        if source.count(mutation.old) != 1:
            raise SystemExit(f"{mutation.name}: the code to mutate is not found once in "
                             f"{mutation.file}; update this mutation")
        path.write_text(source.replace(mutation.old, mutation.new))
        env = {**os.environ, "PYTHONPATH": str(tree)}
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                                 "no:cacheprovider", *mutation.tests], cwd=tree, env=env,
                                capture_output=True, text=True, timeout=900, check=False)
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        return result.returncode == 1, time.monotonic() - started, lines[-1] if lines else ""


def main(names: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    missed = 0
    print(f"{'mutation':18} {'protection':62} result")
    for mutation in chosen:
        caught, seconds, last = run(mutation)
        missed += not caught
        verdict = "caught" if caught else "MISSED"
        print(f"{mutation.name:18} {mutation.protection[:62]:62} {verdict} "
              f"({seconds:.0f} s: {last[:60]})", flush=True)
    print(f"\n{len(chosen) - missed} of {len(chosen)} mutations caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
