"""The audit chain anchored outside the database: attacks by someone who can write to the
database (and knows the project's hash function) but holds neither the checkpoint signing key
nor the checkpoint file.

Each attack is made with SQL on the real database, then ``gateway audit verify`` is run as an
operator runs it; it must fail and name the first record that can no longer be trusted.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text

from gateway import create_app
from gateway.audit import link_hash, record_fields
from gateway.events import Event
from gateway.models import AuditRecord
from tests.conftest import SERVICE_PLUGINS
from tests.conftest import run_cli as run


@pytest.fixture
def gateway(cli_env):
    """The gateway of the CLI's configuration, with a schema and a chain of 6 records."""
    assert run("db", "upgrade")[0] == 0
    app = create_app({"config_dir": str(cli_env)}, plugins=SERVICE_PLUGINS)
    gw = app.extensions["gateway"]
    append(gw, 6)
    yield gw
    gw.db.dispose()


def append(gw, n, start=0):
    for i in range(start, start + n):
        with gw.db.write() as session:
            gw.track(session, Event("test.step", actor="test", target=f"thing:{i}",
                                    details={"n": i}))


def checkpoint_lines(cli_env):
    path = cli_env.parent / "data" / "audit" / "checkpoints.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rewrite_from(gw, seq, **changes):
    """The attacker's full recomputation: edit record ``seq``, then recompute every hash after
    it with the project's own functions, and set the head to the new last link."""
    with gw.db.write() as session:
        records = session.execute(select(AuditRecord).where(AuditRecord.seq >= seq)
                                  .order_by(AuditRecord.seq)).scalars().all()
        prev = session.get(AuditRecord, seq - 1).hash if seq > 1 else "0" * 64
        for record in records:
            if record.seq == seq:
                for name, value in changes.items():
                    setattr(record, name, value)
            record.prev_hash = prev
            record.hash = link_hash(prev, record_fields(record))
            prev = record.hash
        session.execute(text("UPDATE audit_head SET last_seq = :s, last_hash = :h"),
                        {"s": records[-1].seq, "h": prev})


def truncate_after(gw, seq):
    """The attacker's deleted tail, with the head set to match what is left."""
    with gw.db.write() as session:
        session.execute(text("DELETE FROM audit_records WHERE seq > :s"), {"s": seq})
        last = session.get(AuditRecord, seq).hash
        session.execute(text("UPDATE audit_head SET last_seq = :s, last_hash = :h"),
                        {"s": seq, "h": last})


def test_an_untouched_anchored_chain_verifies_and_says_how_far_it_is_anchored(gateway):
    run("audit", "checkpoint")
    append(gateway, 2, start=6)
    code, output = run("audit", "verify")
    assert code == 0, output
    assert "audit chain intact: 8 record(s) verified" in output
    assert "anchored up to record 6 by 1 signed checkpoint(s)" in output
    assert "2 record(s) after it are not anchored yet" in output


def test_a_full_recomputation_after_an_edit_is_caught_by_the_checkpoint(gateway, cli_env):
    run("audit", "checkpoint")
    rewrite_from(gateway, 3, actor="someone-else")
    code, output = run("audit", "verify")
    assert code == 1, output
    assert "BROKEN at record 1" in output
    assert "record 6 does not match the checkpoint" in output


def test_a_rewrite_is_located_after_the_last_checkpoint_that_still_matches(gateway, cli_env):
    run("audit", "checkpoint")          # anchors record 6
    append(gateway, 4, start=6)
    run("audit", "checkpoint")          # anchors record 10
    rewrite_from(gateway, 8, details={"n": 99})
    code, output = run("audit", "verify")
    assert code == 1, output
    assert "BROKEN at record 7" in output
    assert "last good checkpoint: record 6" in output


def test_a_truncated_tail_with_a_matching_head_is_caught(gateway):
    run("audit", "checkpoint")
    truncate_after(gateway, 3)
    code, output = run("audit", "verify")
    assert code == 1, output
    assert "BROKEN at record 4" in output
    assert "a checkpoint covers record 6" in output


def test_a_truncated_tail_that_the_gateway_wrote_over_again_is_caught(gateway):
    run("audit", "checkpoint")
    truncate_after(gateway, 3)
    append(gateway, 5, start=100)       # the gateway goes on: seq 4..8, all new hashes
    code, output = run("audit", "verify")
    assert code == 1, output
    assert "BROKEN at record 1" in output
    assert "record 6 does not match the checkpoint" in output


def test_a_checkpoint_forged_with_another_key_is_refused(gateway, cli_env):
    run("audit", "checkpoint")
    line = checkpoint_lines(cli_env)[-1]
    forged_key = Ed25519PrivateKey.generate()
    body = json.dumps({k: line[k] for k in ("seq", "hash", "count", "at")},
                      sort_keys=True, separators=(",", ":")).encode()
    line["signature"] = forged_key.sign(body).hex()
    path = cli_env.parent / "data" / "audit" / "checkpoints.jsonl"
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")
    code, output = run("audit", "verify")
    assert code == 1, output
    assert "checkpoint line 2" in output and "signature" in output


def test_the_checkpoint_key_is_private_to_its_owner(gateway, cli_env):
    run("audit", "checkpoint")
    key = cli_env.parent / "data" / "audit" / "checkpoint-signing.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (cli_env.parent / "data" / "audit" / "checkpoint-signing.pub").exists()


def test_the_workers_sweep_writes_a_checkpoint_when_the_chain_moved(gateway, cli_env):
    from gateway.sweep import housekeeping

    housekeeping(gateway)
    housekeeping(gateway)                          # nothing new: no second checkpoint
    assert [c["seq"] for c in checkpoint_lines(cli_env)] == [6]
    append(gateway, 1, start=6)
    housekeeping(gateway)                          # within the interval: not yet
    assert [c["seq"] for c in checkpoint_lines(cli_env)] == [6]
    gateway.settings["audit"]["checkpoint_interval_seconds"] = 0
    housekeeping(gateway)
    assert [c["seq"] for c in checkpoint_lines(cli_env)][-1] >= 7
    assert run("audit", "verify")[0] == 0


def test_the_checkpointer_refuses_to_sign_a_rewritten_chain(gateway, cli_env):
    run("audit", "checkpoint")
    rewrite_from(gateway, 2, actor="someone-else")
    append(gateway, 2, start=6)
    code, output = run("audit", "checkpoint")
    assert code == 1 and "NOT written" in output and "record 6" in output
    assert [c["seq"] for c in checkpoint_lines(cli_env)] == [6]
