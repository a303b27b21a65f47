"""What a refused webhook leaves behind: a count, a summed-up log line, and its source's
standing. Never a database write.

The webhook URL answers anyone, so whatever a refusal costs, a stranger can make the gateway
pay it at will. It used to cost an audit record each: one locked append to the hash chain,
the same lock every legitimate write takes (3,000 forged posts in 43 s slowed the API from
36 to 168 ms). Now a refusal is:

* counted in ``gateway_webhooks_rejected_total{courier, reason}`` (every one, every process:
  what an alert watches);
* logged at most once per courier and reason every ``webhooks.log_every_seconds``, the line
  saying how many refusals it stands for;
* counted against its source address in Redis (:class:`gateway.ratelimit.FailureLimiter`): a
  source refused ``webhooks.max_rejections_per_source`` times in a window has its next
  unverifiable webhooks answered 429 until the window ends (see ``gateway.api.webhooks``).

No audit record, not even a summary per window: the audit trail records what the gateway
did and who made it do it, and a refused webhook changed nothing; a record an unauthenticated
caller can trigger would still be a write to the one serialised chain. The metric is where
an attack shows (alert on it), the log line says what it was.
"""

from __future__ import annotations

import logging

from .logs import ThrottledLog
from .ratelimit import FailureLimiter

log = logging.getLogger("gateway.webhooks")

#: the ``courier`` label of refusals that name no configured entry (keeps labels few)
UNKNOWN_COURIER = "unknown"


class WebhookRefusals:
    """One gateway's accounting of refused webhooks (see the module docstring).

    :param settings: the ``webhooks`` section of the core settings
    :param metrics: the gateway's :class:`gateway.metrics.GatewayMetrics`
    """

    def __init__(self, redis, settings, metrics):
        self.metrics = metrics
        self.sources = FailureLimiter(redis, "gateway:webhooks:refused",
                                      settings["max_rejections_per_source"],
                                      settings["rejection_window_seconds"])
        self.lines = ThrottledLog(log, settings["log_every_seconds"])

    def wait(self, source: str) -> float | None:
        """Seconds ``source`` must wait before it is heard again, or None."""
        return self.sources.wait(source)

    def refused(self, courier: str, reason: str, source: str, why: str = "", *,
                count_source: bool = True) -> None:
        """Count one refusal: in the metric, in the log's sums and, unless told not to,
        against ``source`` (a 429, its window already full, is not counted there again)."""
        self.metrics.count_webhook_rejected(courier, reason)
        if count_source and reason != "rate_limited":
            self.sources.failed(source)
        self.lines.warning((courier, reason), "webhook for %s refused (%s) from %s: %s",
                           courier, reason, source, _printable(why) or reason,
                           extra={"courier": courier, "outcome": reason})


def _printable(text: str, limit: int = 120) -> str:
    """An adapter's reason may quote the body (a member name): one line, short."""
    text = "".join(c if c.isprintable() else " " for c in text[:limit + 1])
    return text if len(text) <= limit else text[:limit] + "..."
