"""One request's whole story, from every table that holds a piece of it, in time order.

Status events, courier attempts (a second courier's attempt is a failover), agency callbacks,
the citizen's notices (status events of the notices core, shown as what they are) and the
audit records about the request (cancels, retries, job outcomes) are merged here, without any
I/O, so the order and wording can be tested on plain rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..notices import TIMELINE_SOURCE
from .i18n import N_

#: what a notice's step is called on the page (``notice_<state>`` on the timeline)
NOTICE_STATES = (N_("notice"), N_("queued"), N_("held"), N_("sent"), N_("read"),
                 N_("fell_back"), N_("suppressed"), N_("late_sent"), N_("late_delivered"),
                 N_("late_read"), N_("late_failed"))


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str        # status | attempt | failover | callback | notice | audit
    title: str
    detail: str | None = None
    state: str | None = None


def _audit_time(recorded_at: str) -> datetime:
    return datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))


def build(events, attempts, callbacks, audit_records) -> list[Entry]:
    entries = []
    for event in events:
        if event.source == TIMELINE_SOURCE:
            entries.append(Entry(event.created_at, "notice", event.detail or "",
                                 None, (event.raw_status or "").removeprefix("notice_")))
            continue
        title = event.status if event.applied else f"{event.status} (not applied)"
        detail = " · ".join(filter(None, [event.source, event.raw_status, event.detail]))
        entries.append(Entry(event.created_at, "status", title, detail, event.status))
    first_courier = None
    for attempt in sorted(attempts, key=lambda a: a.attempt_no):
        first_courier = first_courier or attempt.courier
        kind = "failover" if attempt.courier != first_courier else "attempt"
        entries.append(Entry(attempt.created_at, kind,
                             f"{attempt.courier} #{attempt.attempt_no}",
                             " · ".join(filter(None, [attempt.reference, attempt.detail])),
                             attempt.state))
    for callback in callbacks:
        if callback.delivered_at:
            state, at = "delivered", callback.delivered_at
        elif callback.gave_up_at:
            state, at = "gave_up", callback.gave_up_at
        else:
            state, at = "pending", callback.created_at
        detail = f"{callback.attempts} attempt(s)"
        if callback.last_error:
            detail += f" · {callback.last_error}"
        entries.append(Entry(at, "callback", f"callback {callback.status}", detail, state))
    for record in audit_records:
        if record.action == "request.status" or record.action.startswith("notice."):
            continue   # already on the timeline as a status event (a notice's too)
        entries.append(Entry(_audit_time(record.recorded_at), "audit", record.action,
                             record.actor, record.outcome))
    return sorted(entries, key=lambda e: e.at)
