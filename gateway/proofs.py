"""Proof of delivery: the courier's delivery time, and its proof images kept before they expire.

A courier reports a delivery with links to proof images (Lalamove's ``stops[].POD.image``,
Grab's ``dropoffProofURL``, GO-SEND's ``proofs.pod``); the providers sign those links for a
short while (Grab: about two hours). So when a report carries them (by webhook or by
polling, whichever comes first) a proofs job fetches each image at once, with the other
requests' images waiting (one read, the images at the same time, one transaction: under a
steady 20 deliveries a second a job per request, with two write transactions each, left
hundreds waiting for minutes), and keeps it sealed with the request (``proof_images``),
like the request's own personal data; the retention purge deletes them with it. An image to
try again (the provider's 5xx) goes to the request's own ``proof`` job and its retries.

Fetching a URL a provider's message names is calling a URL an outsider chose, so it must
never become a way into this machine or its network (SSRF):

* the URL's origin must be one of the courier entry's ``proof_hosts`` (``couriers.yaml``);
  a sandbox entry may also fetch from its own simulator (its ``base_url``'s origin on this
  machine), no other port, no other loopback host;
* the connection goes through :class:`gateway.urlguard.GuardedSession` (the address is
  checked when connecting: no private, link-local or metadata address, loopback only for a
  sandbox entry), no redirects, no proxies;
* the body is read up to ``proof_max_bytes`` and must be an image by its declared type and
  by its first bytes (JPEG, PNG or WebP).

The delivery time (``service_requests.delivered_at``) is the courier's: the proof's time
when it gives one, else the time of its delivered report, never when we processed it.

This module never logs a proof link (it may carry a signature) nor any image byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from redis.exceptions import LockError, RedisError
from sqlalchemy import select

from . import origins
from .db import gathered_after_commit
from .events import Event
from .models import ProofImage, ServiceRequest, utcnow
from .queues import QueueNames, WorkList, enqueue_job, job_spec, request_lock
from .urlguard import LOOPBACK_NETWORKS, GuardedSession, UnsafeURL, URLPolicy

log = logging.getLogger(__name__)

#: what an image's first bytes must be, by the content type it is stored under
MAGIC = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",)}
DEFAULT_MAX_BYTES = 5_000_000
#: answers that say the link no longer works: it expired (or never did); retrying is useless
GONE = {401, 403, 404, 410}


class ProofFetchRetry(Exception):
    """Some images could not be fetched for a reason that may pass (the provider's 5xx, a
    network error): the job runs again while the links may still work."""


def image_type(head: bytes) -> str | None:
    """The image type of a body by its first bytes (JPEG, PNG, WebP), or None."""
    for content_type, magics in MAGIC.items():
        if any(head.startswith(m) for m in magics):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _parse_time(value) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def note_delivery(gateway, session, record: ServiceRequest, courier: str, *, urls,
                  proof_time, reported_at: datetime | None) -> None:
    """A delivered report from the courier that holds ``record``: keep the courier's delivery
    time and owe the fetching of each proof image not seen before (queued after commit)."""
    proof_at = _parse_time(proof_time)
    if proof_at is not None:
        record.delivered_at = proof_at  # the proof's own time is the most precise
    elif record.delivered_at is None and reported_at is not None:
        record.delivered_at = reported_at
    urls = [u for u in urls if isinstance(u, str) and u][:20]
    if not urls or record.purged_at is not None:
        return
    existing = session.scalars(select(ProofImage).where(
        ProofImage.request_id == record.id).order_by(ProofImage.index)).all()
    known = {p.link_digest for p in existing}
    index = max((p.index for p in existing), default=-1) + 1
    added = False
    for url in urls:
        digest = hashlib.sha256(url.encode()).hexdigest()
        if digest in known:
            continue
        known.add(digest)
        session.add(ProofImage(request_id=record.id, index=index, courier=courier,
                               status="pending", url_ciphertext=gateway.vault.seal(url),
                               link_digest=digest))
        index += 1
        added = True
    if added:
        session.flush()
        # fetched with the other requests' images waiting (a proofs job, :func:`fetch_batch`)
        gathered_after_commit(session, _OWED, lambda ids: PROOFS.push(
            gateway, list(dict.fromkeys(ids)))).append(record.id)


def fetch_policy(config: dict) -> tuple[set[origins.Origin], URLPolicy, int]:
    """The origins a courier entry's proofs may come from, the address policy of the
    connection, and the size cap."""
    sandbox = bool(config.get("sandbox"))
    allowed = {origins.parse_origin(o) for o in config.get("proof_hosts") or ()}
    if sandbox and isinstance(config.get("base_url"), str):
        try:
            own, _path = origins.parse(config["base_url"])
        except origins.UnsafeUrl:
            own = None
        if own is not None and origins.is_loopback(own):
            allowed.add(own)
    policy = URLPolicy(require_https=not sandbox, allowed_networks=tuple(
        ipaddress.ip_network(n) for n in LOOPBACK_NETWORKS) if sandbox else ())
    return allowed, policy, int(config.get("proof_max_bytes") or DEFAULT_MAX_BYTES)


def refusal(url: str, allowed: set[origins.Origin]) -> str | None:
    """Why a proof link may not be fetched from this courier, or None."""
    try:
        origin, _path = origins.parse(url.split("?", 1)[0])
    except origins.UnsafeUrl:
        return "refused"
    return None if origin in allowed else "refused"


def download(session: requests.Session, url: str, max_bytes: int, timeout: float
             ) -> tuple[str, bytes]:
    """Fetch one image. :return: ``(content type, bytes)``
    :raises ValueError: with the reason to record (``expired``, ``not_an_image``,
        ``too_large``) when fetching again would not help
    :raises ProofFetchRetry: when it may work later
    """
    try:
        response = session.get(url, stream=True, timeout=(timeout, timeout))
    except UnsafeURL:
        raise ValueError("refused") from None
    except requests.RequestException as exc:
        raise ProofFetchRetry(type(exc).__name__) from None
    with response:
        if response.status_code in GONE:
            raise ValueError("expired")
        if response.status_code >= 500 or response.status_code == 429:
            raise ProofFetchRetry(f"status {response.status_code}")
        if response.status_code != 200:
            raise ValueError("refused")
        declared = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if declared not in (*MAGIC, "image/webp"):
            raise ValueError("not_an_image")
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise ValueError("too_large")
        body = bytearray()
        try:
            for chunk in response.iter_content(65536):
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise ValueError("too_large")
        except requests.RequestException as exc:
            raise ProofFetchRetry(type(exc).__name__) from None
    found = image_type(bytes(body[:16]))
    if found is None or found != declared:
        raise ValueError("not_an_image")
    return found, bytes(body)


def fetch_proofs(gateway, request_id: str, *, last_try: bool = False) -> str:
    """The ``proof`` job: fetch every pending proof image of a request and keep it sealed.

    A link that no longer works, points where the courier's proofs may not come from, or
    does not give an image is recorded as failed (the job does not fail for it).

    :raises ProofFetchRetry: some images may be fetched later (on the last try they are
        recorded as failed, ``unreachable``)
    """
    pending = _pending(gateway, [request_id])
    if not pending:
        return "nothing to do"
    results = {proof.id: _fetch(gateway, proof.courier, proof.url, last_try)
               for proof in pending}
    with gateway.db.write() as session:
        stored, failed = _keep(gateway, session, results)
    if any(result is None for result in results.values()):
        raise ProofFetchRetry(f"{stored} stored, {failed} failed, some to try again")
    return f"{stored} stored, {failed} failed"


@dataclass(frozen=True)
class _Pending:
    id: int
    request_id: str
    courier: str
    url: str


def _pending(gateway, request_ids: list[str]) -> list[_Pending]:
    """The pending proof images of these requests, their links opened (one read)."""
    with gateway.db.read() as session:
        return [_Pending(p.id, p.request_id, p.courier, gateway.vault.open(p.url_ciphertext))
                for p in session.scalars(select(ProofImage).where(
                    ProofImage.request_id.in_(request_ids), ProofImage.status == "pending",
                    ProofImage.url_ciphertext.is_not(None))
                    .order_by(ProofImage.request_id, ProofImage.index))]


def _fetch(gateway, courier_name: str, url: str, last_try: bool) -> tuple | None:
    """One image through the guard (see the module docstring). :return: ``("stored",
    content type, bytes)``, ``("failed", reason)``, or None when it may work later (on the
    last try: failed, ``unreachable``)"""
    courier = gateway.couriers.get(courier_name)
    if courier is None:
        return ("failed", "refused")
    allowed, policy, max_bytes = fetch_policy(courier.config)
    reason = refusal(url, allowed)
    if reason is not None:
        return ("failed", reason)
    try:
        with GuardedSession(policy) as http:
            content_type, body = download(http, url, max_bytes, courier.timeout)
    except ValueError as exc:
        return ("failed", str(exc))
    except ProofFetchRetry:
        return ("failed", "unreachable") if last_try else None
    return ("stored", content_type, body)


def _keep(gateway, session, results: dict[int, tuple | None]) -> tuple[int, int]:
    """Record what fetching gave, in the caller's transaction (an image still pending, or
    to try again, is left as it is). :return: (stored, failed)"""
    stored = failed = 0
    for proof_id, result in results.items():
        if result is None:
            continue
        proof = session.get(ProofImage, proof_id, with_for_update=True)
        if proof is None or proof.status != "pending":
            continue
        record = session.get(ServiceRequest, proof.request_id)
        proof.url_ciphertext = None
        if result[0] == "stored" and record is not None and record.purged_at is None:
            _kind, content_type, body = result
            sha256 = hashlib.sha256(body).hexdigest()
            if session.scalar(select(ProofImage.id).where(
                    ProofImage.request_id == proof.request_id,
                    ProofImage.sha256 == sha256, ProofImage.id != proof.id)):
                # the same photo under a new link (re-signed by the provider): kept once
                session.delete(proof)
                continue
            proof.status, proof.content_type, proof.size = "stored", content_type, len(body)
            proof.sha256 = sha256
            proof.ciphertext = gateway.vault.seal_bytes(body)
            proof.fetched_at = utcnow()
            stored += 1
        else:
            proof.status = "failed"
            proof.error = result[1] if result[0] == "failed" else "purged"
            failed += 1
            log.info("proof image %s of a request from %s not kept: %s", proof.index,
                     proof.courier, proof.error)
    return stored, failed


#: requests whose proof images wait to be fetched, for a proofs job (:func:`fetch_batch`)
PROOFS = WorkList("gateway:proofs:ready", "gateway:proofs:batch-scheduled",
                  QueueNames.DEFAULT, "gateway.jobs.fetch_proofs_batch", "proofs-batch")
#: ``session.info`` key: the requests this transaction owes a proofs job
_OWED = "proofs_owed"
#: requests whose images one transaction records; how long one proofs job works
PROOFS_PER_BATCH, PROOFS_SLICE_SECONDS = 10, 5.0


def work_the_proofs(gateway, pool) -> dict[str, int]:
    """The proofs job: :data:`PROOFS` a batch at a time until it is empty (or the job has
    worked :data:`PROOFS_SLICE_SECONDS`: then another job carries on).

    :param pool: the threads that fetch a batch's images at the same time
    :return: outcomes counted"""
    return PROOFS.work(gateway, PROOFS_PER_BATCH, PROOFS_SLICE_SECONDS,
                       lambda ids: list(fetch_batch(gateway, ids, pool).values()))


def fetch_batch(gateway, request_ids: list[str], pool) -> dict[str, str]:
    """Fetch the pending images of several requests: one read, the images at the same time,
    one transaction that keeps them and audits each request's outcome as its own ``proof``
    job would. A request whose own job is at work is left to it; one with an image to try
    again (the provider's 5xx) is handed to its own job, whose retries wait and try again.
    :return: each request's outcome"""
    locks = {}
    for request_id in request_ids:
        lock = request_lock(gateway, "proof", request_id)
        if lock.acquire(blocking=False):
            locks[request_id] = lock
    outcomes: dict[str, str] = {}
    try:
        pending = _pending(gateway, list(locks))
        results = dict(zip((p.id for p in pending), pool.map(
            lambda proof: _fetch(gateway, proof.courier, proof.url, False), pending),
            strict=True))
        retry = {p.request_id for p in pending if results[p.id] is None}
        with gateway.db.write() as session:
            correlation = dict(session.execute(select(
                ServiceRequest.id, ServiceRequest.correlation_id).where(
                ServiceRequest.id.in_(list(locks)))).all())
            for request_id in locks:
                mine = {p.id: results[p.id] for p in pending if p.request_id == request_id}
                if not mine:
                    outcomes[request_id] = "nothing to do"
                    continue
                stored, failed = _keep(gateway, session, mine)
                outcomes[request_id] = "retry" if request_id in retry \
                    else f"{stored} stored, {failed} failed"
                gateway.track(session, Event(
                    "job.proof", actor="worker", target=f"request:{request_id}",
                    outcome=outcomes[request_id], correlation_id=correlation.get(request_id)))
    finally:
        for lock in locks.values():
            with contextlib.suppress(LockError, RedisError):
                lock.release()
    for request_id in retry:
        with contextlib.suppress(RedisError):   # still pending: the sweep finds it
            enqueue_job(gateway, "proof", request_id,
                        delay=job_spec(gateway, "proof")[2][0])
    return outcomes


def listing(session, request_id: str) -> list[dict]:
    """What may be said of a request's proof images (no link, no byte)."""
    return [{"index": p.index, "status": p.status, "error": p.error,
             "content_type": p.content_type, "size": p.size,
             "fetched_at": p.fetched_at.isoformat().replace("+00:00", "Z")
             if p.fetched_at else None, "courier": p.courier}
            for p in session.scalars(select(ProofImage).where(
                ProofImage.request_id == request_id).order_by(ProofImage.index))]


def image(session, vault, request_id: str, index: int) -> tuple[str, bytes] | None:
    """A stored proof image's content type and bytes, or None."""
    proof = session.scalar(select(ProofImage).where(
        ProofImage.request_id == request_id, ProofImage.index == index,
        ProofImage.status == "stored"))
    if proof is None or proof.ciphertext is None:
        return None
    return proof.content_type, vault.open_bytes(proof.ciphertext)
