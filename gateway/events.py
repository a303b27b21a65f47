"""Audit-worthy facts, broadcast through the ``track_event`` hook.

An event names an actor, an action, a target and an outcome, plus ``details`` that must
never hold personal data or secrets (references, counts and codes only). Every state-changing
API call, admin action, job outcome, provider call and status change is one event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Event:
    action: str
    actor: str = SYSTEM_ACTOR
    target: str | None = None
    outcome: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None


def actor_label(actor: dict | None) -> str:
    """A stable, non-secret name for an actor: ``agency:<id>`` or ``admin:<username>``."""
    if not actor:
        return "anonymous"
    return f"{actor['type']}:{actor['id']}"
