"""What the current unit of work is about, for records written far from where it started.

The correlation id follows a request from the API through its jobs to each provider call,
so the audit records of one request can be found together whatever wrote them.
"""

from contextvars import ContextVar

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
