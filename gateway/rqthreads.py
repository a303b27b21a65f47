"""rq workers that run in a thread: the one place the gateway reaches inside rq.

rq (written against 3.0) runs a worker in the main thread of its process and stops it by
signal. It has no public way to do either otherwise, and the gateway needs both: its callback
workers are threads beside the main worker (``gateway.worker``), and tests drain the queues
from any thread (``gateway.testing``). So :class:`InThread` touches two private names of
``rq.worker.BaseWorker``, here and nowhere else:

* ``_install_signal_handlers()``: ``work()`` calls it unconditionally, and Python lets only
  the main thread install a signal handler; in a thread it must do nothing.
* ``_stop_requested``: the flag rq's loop reads between two jobs (what its own warm shutdown
  sets). The public ``request_stop(signum, frame)`` installs signal handlers and may raise
  ``StopRequested`` in the caller's thread, so it cannot stop a worker from another thread.

On an rq upgrade, check that both still mean this (``tests/gateway/test_worker_threads.py``
fails if they do not).
"""

from __future__ import annotations

from rq.timeouts import TimerDeathPenalty


class InThread:
    """Mix in before an rq worker class: no signal handlers, jobs timed out by a timer
    instead of SIGALRM, and a stop that any thread may ask for."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):     # rq 3.0: see the module docstring
        pass

    def ask_to_stop(self) -> None:
        """Finish the current job, if any, then leave (rq's warm shutdown, without a signal)."""
        self._stop_requested = True         # rq 3.0: see the module docstring

    @property
    def stop_asked(self) -> bool:
        return self._stop_requested
