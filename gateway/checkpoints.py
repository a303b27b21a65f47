"""Signed checkpoints of the audit chain, kept outside the database.

The hash chain (``gateway.audit``) shows that records were changed only to someone who cannot
recompute it; whoever can write to the database can edit a record and recompute every hash
after it, or delete the tail and move the head back, and the chain still verifies. So, as
X-Road's message log signs its batches, a checkpointer periodically signs the chain's head
(``seq``, its ``hash``, the record ``count``, the time) with an Ed25519 key that the database
writer does not hold and appends it as one JSON line to a file outside the database.
:func:`verify_anchored` then checks the chain against every checkpoint: a recomputation
changes a checkpointed hash; a truncation leaves the chain shorter than a checkpoint.

The checkpointer refuses to sign a head that contradicts the last checkpoint (it would be
signing a rewritten chain): it logs the failure and signs nothing until the chain is put
right, so the last good checkpoint stays the last one (fail closed).

What the checkpoints cannot protect: records written after the newest checkpoint (at most
``audit.checkpoint_interval_seconds`` of them) may still be rewritten or dropped unnoticed,
and anyone holding the signing key, or able to delete the file and the key together, defeats
them. Where that matters, the key and the file belong to another user or host (docs/DEPLOY.md).
This module never writes to the database.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .audit import (
    GENESIS_HASH,
    HEAD_ID,
    VerifyResult,
    link_hash,
    record_fields,
    records,
    verify_chain,
)
from .models import AuditHead, AuditRecord

log = logging.getLogger(__name__)

FILE_NAME = "checkpoints.jsonl"
SIGNING_KEY_NAME = "checkpoint-signing.key"
PUBLIC_KEY_NAME = "checkpoint-signing.pub"
SIGNED_FIELDS = ("seq", "hash", "count", "at")


class CheckpointError(Exception):
    """Checkpoints cannot be written or read here (no key, unreadable file, ...)."""


@dataclass(frozen=True)
class CheckpointPaths:
    """Where this deployment keeps its checkpoints and keys (``audit`` in gateway.yaml)."""

    directory: Path
    signing_key: Path
    public_key: Path

    @classmethod
    def from_settings(cls, settings) -> CheckpointPaths:
        audit = settings["audit"]
        directory = Path(audit["checkpoint_dir"] or Path(settings["data_dir"]) / "audit")
        signing_key = Path(audit["signing_key"] or directory / SIGNING_KEY_NAME)
        public_key = Path(audit["public_key"] or signing_key.with_suffix(".pub"))
        return cls(directory, signing_key, public_key)

    @property
    def file(self) -> Path:
        return self.directory / FILE_NAME


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    count: int
    at: str
    signature: str
    line: int = 0

    def signed_bytes(self) -> bytes:
        return signed_bytes({name: getattr(self, name) for name in SIGNED_FIELDS})


def signed_bytes(fields: dict) -> bytes:
    return json.dumps({k: fields[k] for k in SIGNED_FIELDS}, sort_keys=True,
                      separators=(",", ":")).encode()


# -- keys ---------------------------------------------------------------------------------
def load_or_create_signing_key(paths: CheckpointPaths) -> Ed25519PrivateKey:
    """The signing key; made on first use (mode 0600, its public key beside it), so the
    quick start needs no step of its own."""
    if paths.signing_key.exists():
        return _read_private(paths.signing_key)
    paths.signing_key.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(paths.signing_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:          # another process made it meanwhile: use theirs
        return _read_private(paths.signing_key)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    if not paths.public_key.exists():
        paths.public_key.parent.mkdir(parents=True, exist_ok=True)
        paths.public_key.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    log.info("audit checkpoint signing key created at %s", paths.signing_key)
    return key


def _read_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the checkpoint signing key {path}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(paths: CheckpointPaths) -> Ed25519PublicKey | None:
    """The key checkpoints are verified with: the public key file, else the signing key's
    own; None when neither exists (nothing was ever checkpointed here)."""
    if paths.public_key.exists():
        try:
            key = serialization.load_pem_public_key(paths.public_key.read_bytes())
        except ValueError as exc:
            raise CheckpointError(f"{paths.public_key} is not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise CheckpointError(f"{paths.public_key} is not an Ed25519 public key")
        return key
    if paths.signing_key.exists():
        return _read_private(paths.signing_key).public_key()
    return None


# -- the file -----------------------------------------------------------------------------
def read_checkpoints(paths: CheckpointPaths) -> Iterator[Checkpoint | str]:
    """Each line of the file as a :class:`Checkpoint`, or as a string saying why it is not
    one (a damaged file is evidence too, not something to skip)."""
    try:
        handle = paths.file.open(encoding="utf-8")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CheckpointError(f"cannot read {paths.file}: {exc.strerror}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                yield Checkpoint(int(data["seq"]), str(data["hash"]), int(data["count"]),
                                 str(data["at"]), str(data["signature"]), number)
            except (ValueError, KeyError, TypeError):
                yield f"checkpoint line {number} is not a checkpoint"


def last_checkpoint(paths: CheckpointPaths) -> Checkpoint | None:
    last = None
    for item in read_checkpoints(paths):
        if isinstance(item, Checkpoint):
            last = item
    return last


def _append(paths: CheckpointPaths, line: str) -> None:
    """One ``write`` on a file opened for appending: a line is never interleaved or cut."""
    paths.directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# -- writing ------------------------------------------------------------------------------
def write_checkpoint(gateway, *, min_interval_seconds: float = 0) -> Checkpoint | None:
    """Sign the chain's current head and append it, when it moved since the last checkpoint
    and that one is at least ``min_interval_seconds`` old.

    :return: the checkpoint written, or None when none was due
    :raises CheckpointError: the key cannot be read, or the chain contradicts the last
        checkpoint (it was rewritten or truncated: nothing is signed until it is put right)
    """
    paths = CheckpointPaths.from_settings(gateway.settings)
    previous = last_checkpoint(paths)
    if previous is not None and min_interval_seconds > 0:
        age = time.time() - datetime.fromisoformat(previous.at).timestamp()
        if age < min_interval_seconds:
            return None
    with gateway.db.read() as session:
        head = session.get(AuditHead, HEAD_ID)
        if head is None or head.last_seq == 0:
            return None
        if previous is not None and previous.seq == head.last_seq:
            if previous.hash != head.last_hash:
                raise CheckpointError(f"the chain's head no longer matches the checkpoint "
                                      f"of record {previous.seq}: it was rewritten")
            return None
        _check_since(session, previous, head)
        seq, head_hash = head.last_seq, head.last_hash
    fields = {"seq": seq, "hash": head_hash, "count": seq,
              "at": datetime.now(UTC).isoformat(timespec="seconds")}
    signature = load_or_create_signing_key(paths).sign(signed_bytes(fields)).hex()
    _append(paths, json.dumps({**fields, "signature": signature}, sort_keys=True) + "\n")
    return Checkpoint(**fields, signature=signature)


def _check_since(session, previous: Checkpoint | None, head: AuditHead) -> None:
    """The records from the last checkpoint to the head link to it and to each other."""
    start = previous.seq if previous else 0
    prev_hash = previous.hash if previous else GENESIS_HASH
    if previous is not None:
        anchored = session.get(AuditRecord, previous.seq)
        if anchored is None or anchored.hash != previous.hash:
            raise CheckpointError(f"record {previous.seq} no longer matches its checkpoint: "
                                  "the chain was rewritten or truncated")
    expected = start + 1
    for record in records(session, after=start):
        if (record.seq != expected or record.prev_hash != prev_hash
                or link_hash(prev_hash, record_fields(record)) != record.hash):
            raise CheckpointError(f"record {expected} does not verify: not signing the head")
        prev_hash, expected = record.hash, expected + 1
    if expected - 1 != head.last_seq or prev_hash != head.last_hash:
        raise CheckpointError("the chain's head does not follow its records: not signing")


def checkpoint_if_due(gateway) -> None:
    """The workers' periodic checkpoint (``gateway.sweep``), when this deployment lets the
    workers hold the key (``audit.checkpoint_in_worker``); failures are logged loudly."""
    audit = gateway.settings["audit"]
    if not audit["checkpoint_in_worker"]:
        return
    try:
        write_checkpoint(gateway, min_interval_seconds=audit["checkpoint_interval_seconds"])
    except CheckpointError as exc:
        log.error("audit checkpoint NOT written: %s", exc)


# -- verifying ----------------------------------------------------------------------------
def signed_anchors(paths: CheckpointPaths) -> dict[int, str]:
    """``{seq: hash}`` of every checkpoint in the file, each signature checked.

    :raises CheckpointError: a line that is not a checkpoint, a signature that the public key
        does not verify (forged or edited), two lines that disagree, or checkpoints with no
        public key to check them
    """
    public_key = load_public_key(paths)
    anchors: dict[int, Checkpoint] = {}
    for item in read_checkpoints(paths):
        if isinstance(item, str):
            raise CheckpointError(item)
        if public_key is None:
            raise CheckpointError(f"checkpoints exist but there is no public key to verify "
                                  f"them ({paths.public_key})")
        try:
            public_key.verify(bytes.fromhex(item.signature), item.signed_bytes())
        except (InvalidSignature, ValueError):
            raise CheckpointError(f"checkpoint line {item.line} does not carry a valid "
                                  "signature of the checkpoint key (forged or edited)") from None
        known = anchors.get(item.seq)
        if known is not None and known.hash != item.hash:
            raise CheckpointError(f"checkpoint lines {known.line} and {item.line} sign "
                                  f"different hashes for record {item.seq}")
        anchors[item.seq] = item
    return {seq: checkpoint.hash for seq, checkpoint in anchors.items()}


def verify_anchored(session, paths: CheckpointPaths) -> VerifyResult:
    """The chain checked against every signed checkpoint (``gateway.audit.verify_chain``);
    a bad checkpoint file fails the verification too, naming its line."""
    try:
        anchors = signed_anchors(paths)
    except CheckpointError as exc:
        return VerifyResult(False, 0, None, str(exc))
    return verify_chain(session, anchors)
