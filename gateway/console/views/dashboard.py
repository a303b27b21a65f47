"""The console's dashboard."""

from __future__ import annotations

from .. import bp, render, requires


@bp.route("/dashboard")
@requires("console:dashboard")
def dashboard():
    return render("console/dashboard.html")
