"""The console's dashboard: today at a glance, for every role.

The figures come from ``gateway.reports`` (SQL aggregates and Redis counters); this view only
gathers them and picks the page. Redis being down must not take the dashboard with it: the
queue card then says it cannot be read (and the breaker reports every circuit closed).
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from ... import region, reports
from ...models import utcnow
from .. import bp, gateway, render, requires
from ..i18n import service_title

#: the page reloads itself this often (console.js; only while nobody is typing)
REFRESH_SECONDS = 60


@bp.route("/dashboard")
@requires("console:dashboard")
def dashboard():
    gw = gateway()
    now = utcnow()
    start, end = region.today(gw, now)
    targets = {name: gw.service_settings(name).get("target_minutes")
               for name in gw.services}
    with gw.db.read() as session:
        counts = reports.today_counts(session, start, end)
        dispatch = reports.dispatch_speed(session, start, end, now)
        on_time = reports.delivery_on_time(session, start, end, targets, now)
        health = reports.provider_health(session, gw.circuits, gw.couriers, now)
        silent = [figure for figure in reports.webhook_silence(
            session, [name for name, adapter in gw.couriers.items() if adapter.takes_webhooks()],
            timedelta(seconds=gw.settings["webhooks"]["silence_alert_seconds"]), now)
            if figure.silent]
        max_age = gw.settings["jobs"]["max_queue_age_seconds"]
        queues = reports.queue_figures_or_none(gw.redis, session, max_age)
    if queues is None:
        current_app.logger.warning("dashboard: Redis unreachable, queue figures left out")
    return render("console/dashboard.html", now=now, day_start=start, counts=counts,
                  dispatch=dispatch, dispatch_seconds=int(reports.DISPATCH_WITHIN.total_seconds()),
                  on_time=on_time, health=health, silent=silent,
                  health_minutes=int(reports.HEALTH_WINDOW.total_seconds() // 60),
                  queues=queues, max_age=max_age,
                  titles={name: service_title(s) for name, s in gw.services.items()},
                  refresh_seconds=REFRESH_SECONDS)
