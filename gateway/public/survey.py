"""The satisfaction survey ``/s/<token>`` (SKM, ``gateway.skm``): the nine elements on the
1-4 scale, an optional comment and an optional complaint, once per request, after delivery.

* **Who may answer**: whoever holds the request's link (the same token as its tracking
  page), only once the request is delivered and while its pages answer.
* **One answer per request**: ``survey_answers.request_id`` is unique, so a second submit,
  or two at the same moment, leaves one row; the loser is told the survey is answered.
* **Forms without sessions**: the form carries ``issued.signature``, an HMAC (the gateway's
  form key, derived from the data key) over the token and the time it was issued; a POST
  whose signature does not match, or older than :data:`FORM_LIFETIME`, is refused (400),
  so a page elsewhere cannot submit on the citizen's behalf without first reading the form.
* The comment and the complaint are sealed (a citizen may write a name in them); the
  console exports them for SP4N-LAPOR!.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import skm
from ..events import Event
from ..gate import public
from ..models import SurveyAnswer, utcnow
from ..statuses import Status
from . import texts
from .common import bp, find, gateway, not_found, page

#: how long a survey form may be kept open before it is sent
FORM_LIFETIME = 24 * 3600
MAX_TEXT = 2000


def form_token(token: str, issued: int | None = None) -> str:
    issued = int(time.time()) if issued is None else issued
    signature = hmac.new(gateway().form_secret, f"survey\0{token}\0{issued}".encode(),
                         hashlib.sha256).hexdigest()
    return f"{issued}.{signature}"


def form_token_valid(token: str, sent: str) -> bool:
    issued_text, _, _signature = (sent or "").partition(".")
    if not issued_text.isascii() or not issued_text.isdigit() or len(issued_text) > 12:
        return False
    issued = int(issued_text)
    if not 0 <= time.time() - issued <= FORM_LIFETIME:
        return False
    return hmac.compare_digest(form_token(token, issued), sent)


def _elements():
    language = texts.language()
    return [{"code": e.code, "name": e.name[language], "question": e.question[language],
             "answers": list(enumerate(e.answers[language], start=1))}
            for e in skm.ELEMENTS]


def _form(token: str, status: int = 200, errors: dict | None = None, values=None):
    return page("public/survey.html", status, token=token, elements=_elements(),
                form_token=form_token(token), errors=errors or {}, values=values or {},
                max_text=MAX_TEXT)


def _message(token: str, status: int, message: str):
    return page("public/message.html", status, title=texts.gettext("Satisfaction survey"),
                message=message, back=f"/t/{token}?lang={texts.language()}")


@bp.route("/s/<token>", methods=["GET", "POST"])
@public
def survey(token: str):
    """The survey form, and its answer (public: the token is the credential)."""
    gw = gateway()
    with gw.db.read() as session:
        record = find(session, token)
        if record is None:
            return not_found()
        delivered = record.status == str(Status.DELIVERED)
        answered = session.scalar(select(SurveyAnswer.id).where(
            SurveyAnswer.request_id == record.id)) is not None
        request_id = record.id
        facts = {"agency_id": record.agency_id, "service": record.service,
                 "key_type": record.key_type, "correlation_id": record.correlation_id}
    if not delivered:
        return _message(token, 409 if request.method == "POST" else 200, texts.gettext(
            "The survey opens once the delivery has been received."))
    if answered:
        return _message(token, 409 if request.method == "POST" else 200,
                        texts.gettext("This survey has already been answered."))
    if request.method == "GET":
        return _form(token)
    if not form_token_valid(token, request.form.get("form_token", "")):
        return _message(token, 400, texts.gettext(
            "The form has expired. Please fill it in again."))
    errors: dict[str, str] = {}
    try:
        scores = skm.check_scores(request.form)
    except skm.InvalidAnswer as exc:
        errors.update({code: texts.gettext("Please answer this question.")
                       if why == "missing" else texts.gettext(
                           "Please choose one of the four answers.")
                       for code, why in exc.fields.items()})
        scores = {}
    comment = request.form.get("comment", "").strip()
    complaint = request.form.get("complaint", "").strip()
    for name, text in (("comment", comment), ("complaint", complaint)):
        if len(text) > MAX_TEXT or "\x00" in text:
            errors[name] = texts.gettext("At most %(count)s characters.", count=MAX_TEXT)
    if errors:
        return _form(token, 422, errors, request.form)
    try:
        with gw.db.write() as session:
            session.add(SurveyAnswer(
                request_id=request_id, agency_id=facts["agency_id"],
                service=facts["service"], key_type=facts["key_type"],
                language=texts.language(), **scores,
                comment_ciphertext=gw.vault.seal(comment) if comment else None,
                complaint_ciphertext=gw.vault.seal(complaint) if complaint else None,
                has_complaint=bool(complaint), created_at=utcnow()))
            session.flush()
            gw.track(session, Event("survey.answer", actor="citizen",
                                    target=f"request:{request_id}",
                                    details={"service": facts["service"],
                                             "complaint": bool(complaint)},
                                    correlation_id=facts["correlation_id"]))
    except IntegrityError:      # answered a moment ago, by another submit
        return _message(token, 409, texts.gettext("This survey has already been answered."))
    return _message(token, 201, texts.gettext("Your answer has been recorded."))
