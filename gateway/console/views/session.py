"""Sign in, sign out, and the choice of language."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import g, redirect, request, session, url_for

from ...gate import public
from .. import agency_actor, bp, gateway, render
from ..auth import sign_in as do_sign_in
from ..auth import sign_out as do_sign_out
from ..i18n import LANGUAGES
from ..users import set_language


def _safe_next(target: str | None) -> str:
    """Only a path on this console: never an absolute URL an attacker could plant."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/console/") \
                and not target.startswith("//"):
            return target
    return url_for("console.index")


@bp.route("/")
def index():
    """The start page: the dashboard, or an agency's own requests for its staff."""
    if agency_actor.is_agency(g.get("actor")):
        return redirect(url_for("console.requests"))
    return redirect(url_for("console.dashboard"))


@bp.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in():
    error, status, headers = None, 200, {}
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:64]
        problem = do_sign_in(gateway(), username, request.form.get("password", ""))
        if problem is None:
            return redirect(_safe_next(request.args.get("next")))
        status, error, wait = problem
        if wait:
            headers["Retry-After"] = str(wait)
    body, status = render("console/sign_in.html", status, error=error, username=username,
                          next=request.args.get("next", ""))
    return body, status, headers


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    do_sign_out(gateway())
    return redirect(url_for("console.sign_in"))


@bp.route("/language", methods=["POST"])
@public
def choose_language():
    """Anyone may choose a language (the sign-in page offers it); it is kept on the account."""
    language = request.form.get("language")
    if language in LANGUAGES:
        session["language"] = language
        actor = g.get("actor")
        if actor is None:
            from ..auth import actor_from_request

            actor = actor_from_request(gateway(), request)
        if actor:
            set_language(gateway(), actor["user_id"], language)
    return redirect(_safe_next(request.form.get("next")))
