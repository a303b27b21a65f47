"""Requests by spreadsheet: an uploaded file's rows, previewed, then made through intake.

The console reads the file (``gateway.spreadsheets``) and turns each row into a request body
the way its form does; :func:`start` stores those bodies sealed (they hold patients' names
and NIKs) as an :class:`~gateway.models.Upload` and queues the preview. Nothing here reads a
file or knows the console. Then, in rq jobs that take the upload's id only:

1. :func:`preview` checks every row with :func:`gateway.intake.check` (the API's own
   validation, nothing stored) and records each row ``valid`` or ``invalid`` with intake's
   error (code, message, field paths = the template's column names);
2. nothing is made until a person confirms (:func:`confirm`);
3. :func:`create` hands each valid row to :func:`gateway.intake.submit` with an
   Idempotency-Key derived from the agency, the service and the row's normalised body
   (:func:`row_key`): the same row uploaded again, in this file or another, is the same
   request (intake answers with the one it made). A row that fails is recorded and the
   rest go on.

Both jobs work in chunks of ``CHUNK`` rows and commit each chunk's outcomes and the counters
the progress page shows; a job that dies is run again (rq's retries, or the progress page
queues it again) and takes up the rows not yet recorded.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid

from redis.exceptions import RedisError
from sqlalchemy import select

from . import intake
from .agencies import acting_agency
from .errors import GatewayError, NotFound
from .events import Event
from .models import Upload, UploadRow, utcnow
from .queues import enqueue_after_commit, enqueue_job

log = logging.getLogger(__name__)

CHUNK = 200
#: status -> the job that works it (a page may queue it again if it was lost)
JOB_OF = {"previewing": "upload_preview", "creating": "upload_create"}
IN_PROGRESS = frozenset(JOB_OF)


def row_key(agency_id: str, service: str, body) -> str:
    """The Idempotency-Key of a row: the same content for the same agency and service is
    the same request, whichever file it came in."""
    digest = hashlib.sha256(f"{agency_id}\n{intake.fingerprint(service, body)}".encode())
    return "sheet-" + digest.hexdigest()[:48]


def start(gateway, actor: dict, *, uploaded_by: str, service: str, file_name: str,
          file_kind: str, rows: list[dict], ignored_columns: list[str]) -> str:
    """Store an upload (``rows``: ``[{"row": n, "body": {...}}]``) and queue its preview.

    :raises NotFound, Forbidden: the actor may not use the service (``intake.service_for``)
    :return: the upload's id
    """
    intake.service_for(gateway, actor, service)
    with gateway.db.write() as session:
        upload = Upload(agency_id=actor["id"], service=service, key_type=actor["key_type"],
                        uploaded_by=uploaded_by, file_name=file_name[:200],
                        file_kind=file_kind, status="previewing", total_rows=len(rows),
                        done_rows=0, invalid_rows=0, created_rows=0, replayed_rows=0,
                        failed_rows=0, rows_ciphertext=gateway.vault.seal(
                            {"rows": rows, "ignored_columns": ignored_columns}))
        session.add(upload)
        session.flush()
        gateway.track(session, Event("upload.create", actor=f"admin:{uploaded_by}",
                                     target=f"upload:{upload.id}",
                                     details={"service": service, "rows": len(rows),
                                              "agency": actor["id"],
                                              "key_type": actor["key_type"]}))
        enqueue_after_commit(gateway, session, "upload_preview", upload.id)
        return upload.id


def contents(gateway, upload: Upload) -> dict:
    """The upload's sealed rows and ignored columns, opened."""
    return gateway.vault.open(upload.rows_ciphertext)


def confirm(gateway, upload_id: str, who: str) -> bool:
    """Create the upload's valid rows (in a job). False if it is not waiting for that (not
    previewed yet, or confirmed already: a second click does nothing)."""
    with gateway.db.write() as session:
        upload = session.get(Upload, upload_id, with_for_update=True)
        if upload is None or upload.status != "previewed":
            return False
        upload.status, upload.done_rows, upload.updated_at = "creating", 0, utcnow()
        gateway.track(session, Event("upload.confirm", actor=f"admin:{who}",
                                     target=f"upload:{upload.id}",
                                     details={"rows": upload.total_rows - upload.invalid_rows}))
        enqueue_after_commit(gateway, session, "upload_create", upload.id)
        return True


def requeue_if_lost(gateway, upload: Upload) -> None:
    """Queue the job an upload in progress waits for, unless it is queued or running
    (``enqueue_job`` is idempotent); Redis away: the next look tries again."""
    kind = JOB_OF.get(upload.status)
    if kind:
        try:
            enqueue_job(gateway, kind, upload.id)
        except RedisError as exc:
            log.warning("upload %s: job not queued again: %s", upload.id, type(exc).__name__)


def _error_of(exc: GatewayError) -> dict:
    return {"code": exc.code, "message": exc.message, "fields": exc.fields or {}}


def preview(gateway, upload_id: str) -> str:
    """Check every row through intake without creating anything (the preview job)."""
    with gateway.db.read() as session:
        upload = session.get(Upload, upload_id)
        if upload is None or upload.status != "previewing":
            return "nothing to do"
        seen = set(session.scalars(select(UploadRow.row).where(
            UploadRow.upload_id == upload_id)))
        agency_id, service, key_type = upload.agency_id, upload.service, upload.key_type
        actor = acting_agency(gateway, agency_id, key_type, f"console:{upload.uploaded_by}")
        rows = [row for row in contents(gateway, upload)["rows"] if row["row"] not in seen]
    for start_at in range(0, len(rows), CHUNK):
        results = []
        for row in rows[start_at:start_at + CHUNK]:
            try:
                intake.check(gateway, intake.NewRequest(actor=actor, service=service,
                                                        body=row["body"]))
                results.append(UploadRow(upload_id=upload_id, row=row["row"],
                                         outcome="valid"))
            except GatewayError as exc:
                results.append(UploadRow(upload_id=upload_id, row=row["row"],
                                         outcome="invalid", error=_error_of(exc)))
        _record(gateway, upload_id, results, invalid=sum(
            r.outcome == "invalid" for r in results))
    with gateway.db.write() as session:
        upload = session.get(Upload, upload_id)
        upload.status, upload.updated_at = "previewed", utcnow()
    return "previewed"


def _record(gateway, upload_id: str, results: list[UploadRow], *, invalid=0, created=0,
            replayed=0, failed=0, merge=False) -> None:
    """One chunk's outcomes and the counters, in one commit."""
    with gateway.db.write() as session:
        for result in results:
            if merge:
                session.merge(result)
            else:
                session.add(result)
        upload = session.get(Upload, upload_id)
        upload.done_rows += len(results)
        upload.invalid_rows += invalid
        upload.created_rows += created
        upload.replayed_rows += replayed
        upload.failed_rows += failed
        upload.updated_at = utcnow()


def create(gateway, upload_id: str) -> str:
    """Make each valid row a request through intake, idempotently (the create job)."""
    started = time.monotonic()
    with gateway.db.read() as session:
        upload = session.get(Upload, upload_id)
        if upload is None or upload.status != "creating":
            return "nothing to do"
        waiting = set(session.scalars(select(UploadRow.row).where(
            UploadRow.upload_id == upload_id, UploadRow.outcome == "valid")))
        agency_id, service, key_type = upload.agency_id, upload.service, upload.key_type
        who = upload.uploaded_by
        rows = [row for row in contents(gateway, upload)["rows"] if row["row"] in waiting]
    try:
        actor = acting_agency(gateway, agency_id, key_type, f"console:{who}")
    except NotFound:
        actor = None
    for start_at in range(0, len(rows), CHUNK):
        results, counts = [], {"created": 0, "replayed": 0, "failed": 0}
        for row in rows[start_at:start_at + CHUNK]:
            result = UploadRow(upload_id=upload_id, row=row["row"])
            try:
                if actor is None:
                    raise NotFound("agency_not_found", "The agency is not active.")
                accepted = intake.submit(gateway, intake.NewRequest(
                    actor=actor, service=service, body=row["body"],
                    idempotency_key=row_key(agency_id, service, row["body"]),
                    correlation_id=uuid.uuid4().hex))
                result.outcome = "replayed" if accepted.replayed else "created"
                result.request_id = accepted.record.id
            except GatewayError as exc:
                result.outcome, result.error = "failed", _error_of(exc)
            counts[result.outcome] += 1
            results.append(result)
        _record(gateway, upload_id, results, merge=True, **counts)
    with gateway.db.write() as session:
        upload = session.get(Upload, upload_id)
        upload.status, upload.updated_at = "done", utcnow()
        gateway.track(session, Event(
            "upload.done", actor="worker", target=f"upload:{upload_id}",
            details={"created": upload.created_rows, "replayed": upload.replayed_rows,
                     "failed": upload.failed_rows,
                     "seconds": round(time.monotonic() - started, 1)}))
    return "done"


def results(gateway, upload_id: str) -> list[UploadRow]:
    """Every row's outcome, in the file's order."""
    with gateway.db.read() as session:
        return list(session.scalars(select(UploadRow).where(
            UploadRow.upload_id == upload_id).order_by(UploadRow.row)))
