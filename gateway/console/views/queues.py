"""The console's queues page: how much work waits, runs and failed, and what to do with a
failed job.

Everyone may look (``console:queues:read``); only admins may retry or discard a failed job
(``console:queues:manage``), and each retry or discard is audited. A retried job runs as it
was enqueued: jobs re-check in the database whether their work is still owed, so retrying
one whose request has since ended does nothing.
"""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from redis.exceptions import RedisError

from ... import reports
from ...queues import QueueNames
from .. import audit, bp, gateway, render, requires
from .. import failed_jobs as jobs
from ..i18n import gettext as _

REFRESH_SECONDS = 30


@bp.route("/queues")
@requires("console:queues:read")
def queues():
    gw = gateway()
    redis = gw.redis
    max_age = gw.settings["jobs"]["max_queue_age_seconds"]
    try:
        with gw.db.read() as session:
            figures = reports.gateway_queue_figures(gw, session)
        failed = [job for name in QueueNames.all() for job in jobs.failed_jobs(redis, name)]
    except RedisError:
        return render("console/queues.html", 503, figures=None, failed=[],
                      limit=jobs.LIST_LIMIT, refresh_seconds=REFRESH_SECONDS, max_age=max_age)
    return render("console/queues.html", figures=figures, failed=failed, limit=jobs.LIST_LIMIT,
                  refresh_seconds=REFRESH_SECONDS, max_age=max_age)


def _act(queue: str, job_id: str, action: str, do, done: str):
    """Retry or discard, audit it either way, and say what happened.

    :param done: the (translated) message for success
    """
    if queue not in QueueNames.all() or len(job_id) > 200:
        abort(404)
    gw = gateway()
    try:
        do(gw.redis, queue, job_id)
        outcome = "ok"
        flash(done, "success")
    except jobs.JobGone:
        outcome = "gone"
        flash(_("Job %(job)s is no longer a failed job: someone retried or discarded it, or "
                "it expired.", job=job_id), "error")
    except RedisError:
        abort(503)
    with gw.db.write() as session:
        audit(session, action, f"job:{job_id}", outcome=outcome, queue=queue)
    return redirect(url_for("console.queues"))


@bp.route("/queues/<queue>/failed/<job_id>/retry", methods=["POST"])
@requires("console:queues:manage")
def queue_job_retry(queue, job_id):
    return _act(queue, job_id, "console.job_retry", jobs.retry,
                _("Job %(job)s is back on its queue.", job=job_id))


@bp.route("/queues/<queue>/failed/<job_id>/discard", methods=["POST"])
@requires("console:queues:manage")
def queue_job_discard(queue, job_id):
    return _act(queue, job_id, "console.job_discard", jobs.discard,
                _("Job %(job)s was discarded.", job=job_id))
