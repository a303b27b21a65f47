"""The audit trail: every change leaves a record, and any tampering is caught and located."""

from __future__ import annotations

from sqlalchemy import select, text

from gateway.audit import verify_chain
from gateway.events import Event
from gateway.models import AuditHead, AuditRecord

CREATE = "/api/v1/services/medicine_delivery/requests"


def fill(gateway, n=5):
    for i in range(n):
        with gateway.db.write() as session:
            gateway.track(session, Event("test.step", actor="test", target=f"thing:{i}",
                                         details={"n": i}))


def verify(gateway):
    with gateway.db.read() as session:
        return verify_chain(session)


def test_an_untouched_chain_verifies(gateway, agency, medicine_body):
    agency.post(CREATE, json=medicine_body)
    fill(gateway)
    result = verify(gateway)
    assert result.ok and result.checked >= 7


def test_a_rolled_back_transaction_leaves_no_audit_record(gateway):
    fill(gateway, 2)
    try:
        with gateway.db.write() as session:
            gateway.track(session, Event("test.doomed"))
            raise RuntimeError("the unit of work fails")
    except RuntimeError:
        pass
    with gateway.db.read() as session:
        assert "test.doomed" not in session.scalars(select(AuditRecord.action)).all()
    assert verify(gateway).ok


def test_an_edited_record_is_caught_at_that_record(gateway):
    fill(gateway)
    with gateway.db.write() as session:
        session.execute(text("UPDATE audit_records SET outcome = 'ok-ish' WHERE seq = 3"))
    result = verify(gateway)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "edited" in result.reason


def test_an_edit_that_recomputes_its_own_hash_breaks_the_next_link(gateway):
    from gateway.audit import link_hash, record_fields

    fill(gateway)
    with gateway.db.write() as session:
        record = session.get(AuditRecord, 2)
        record.details = {"n": 99}
        record.hash = link_hash(record.prev_hash, record_fields(record))
    result = verify(gateway)
    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_a_deleted_record_is_caught(gateway):
    fill(gateway)
    with gateway.db.write() as session:
        session.execute(text("DELETE FROM audit_records WHERE seq = 2"))
    result = verify(gateway)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_a_deleted_tail_is_caught_through_the_head(gateway):
    fill(gateway)
    with gateway.db.write() as session:
        session.execute(text("DELETE FROM audit_records WHERE seq >= 4"))
    result = verify(gateway)
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_reordered_records_are_caught(gateway):
    fill(gateway)
    with gateway.db.write() as session:
        a, b = session.get(AuditRecord, 2), session.get(AuditRecord, 3)
        swap = ("recorded_at", "actor", "action", "target", "outcome", "details",
                "prev_hash", "hash")
        values_a = {f: getattr(a, f) for f in swap}
        for f in swap:
            setattr(a, f, getattr(b, f))
            setattr(b, f, values_a[f])
    result = verify(gateway)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_the_head_follows_the_last_record(gateway):
    fill(gateway, 3)
    with gateway.db.read() as session:
        head = session.get(AuditHead, 1)
        last = session.execute(select(AuditRecord).order_by(AuditRecord.seq.desc())
                               ).scalars().first()
    assert (head.last_seq, head.last_hash) == (last.seq, last.hash)
