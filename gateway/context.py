"""What the current unit of work is about, for records written far from where it started.

The correlation id follows a request from the API through its jobs to each provider call,
so the audit records and the log lines of one request can be found together whatever wrote
them. Jobs also say which request and which kind of job they are (``gateway.jobs``); the log
lines carry all three (``gateway.logs``). Ids only: nothing here may hold personal data.
"""

import contextlib
from contextvars import ContextVar

#: the header that carries the correlation id in (agency calls) and out (answers, callbacks)
CORRELATION_HEADER = "X-Correlation-ID"

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
#: the service request a job works for, when it works for one
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
#: the kind of the running job (``dispatch``, ``event``, ...; see ``gateway.queues.JOBS``)
job_kind: ContextVar[str | None] = ContextVar("job_kind", default=None)
#: where provider-call audit records go instead of a transaction of their own, when the unit
#: of work writes them itself with what the call answered (``gateway.batch``)
pending_call_audits: ContextVar[list | None] = ContextVar("pending_call_audits", default=None)

VARIABLES = {"correlation_id": correlation_id, "request_id": request_id, "job_kind": job_kind,
             "pending_call_audits": pending_call_audits}


@contextlib.contextmanager
def bound(**values):
    """Set these variables (by name) for the block, and put the previous values back after
    it: a worker thread runs one unit of work after another."""
    tokens = [(VARIABLES[name], VARIABLES[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)
