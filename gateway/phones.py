"""Phone numbers, read, checked and written by Google's libphonenumber (``phonenumbers``).

One canonical form everywhere inside the gateway: E.164 (``+6281234567890``). Services'
fields read what people type (``0812-3456-7890``, ``62812...``, ``+62 812...``) into it
(``gateway.fields.IndonesianPhone``), neutral orders carry only it (``gateway.orders``),
and each courier's mapping writes it in its provider's dialect with :func:`written`, whose
table :data:`DIALECTS` is the one place that says which provider takes which form. Which
numbers exist, which are mobiles and how long they are is libphonenumber's metadata, kept up
to date upstream, not rules of our own.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

#: The region a number written without a country code belongs to, and the only region whose
#: numbers are accepted. The one place to set it: a ``region`` setting will feed it.
HOME_REGION = "ID"

#: What a number must be to receive a courier's call or an SMS on the move (libphonenumber
#: cannot tell some regions' mobiles from fixed lines; Indonesia's it can).
MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


class InvalidPhoneNumber(ValueError):
    """Not a number of the home region (or not a mobile where one is needed); the message
    says what is expected, for the person who typed it."""


def _expected(mobile: bool) -> str:
    code = phonenumbers.country_code_for_region(HOME_REGION)
    national = "08..." if HOME_REGION == "ID" and mobile else "0..."
    kind = "a mobile number" if mobile else "a phone number"
    return f"Must be {kind} of region {HOME_REGION} (+{code}..., {code}... or {national})."


def parse(text: str, *, mobile: bool = False) -> phonenumbers.PhoneNumber:
    """The number ``text`` writes.

    :param mobile: also require a mobile number
    :raises InvalidPhoneNumber: not a valid number of :data:`HOME_REGION` (or not a mobile)
    """
    # libphonenumber reads letters as a phone keypad ("0812-CALL-ME"); nobody types a
    # patient's number that way, and a letter is far likelier a typing mistake.
    if not text or any(character.isalpha() for character in text):
        raise InvalidPhoneNumber(_expected(mobile))
    try:
        number = phonenumbers.parse(text, HOME_REGION)
    except NumberParseException:
        raise InvalidPhoneNumber(_expected(mobile)) from None
    if not phonenumbers.is_valid_number_for_region(number, HOME_REGION):
        raise InvalidPhoneNumber(_expected(mobile))
    if mobile and phonenumbers.number_type(number) not in MOBILE_TYPES:
        raise InvalidPhoneNumber(_expected(mobile))
    return number


def canonical(text: str, *, mobile: bool = False) -> str:
    """``text`` in E.164 (``0812-3456-7890`` -> ``+6281234567890``).

    :raises InvalidPhoneNumber: as :func:`parse`
    """
    return phonenumbers.format_number(parse(text, mobile=mobile), PhoneNumberFormat.E164)


def e164(text: str) -> str:
    """``text`` written in E.164 (``+6281234567890``), for an order and for a provider that
    takes that form; no number stays none.

    Only written, not judged: what a field accepted stays deliverable even if
    libphonenumber's metadata later calls it invalid (a request stored before an update).

    :raises InvalidPhoneNumber: ``text`` is not a phone number at all
    """
    if not text:
        return ""
    try:
        number = phonenumbers.parse(text, HOME_REGION)
    except NumberParseException:
        raise InvalidPhoneNumber(_expected(mobile=False)) from None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def e164_digits(text: str) -> str:
    """``text`` in E.164 without its plus sign (``6281234567890``), for a provider that takes
    that form (GO-JEK's and Grab's); no number stays none."""
    return e164(text).removeprefix("+")


#: How each courier provider writes a phone number, as its documentation says (sources in
#: the project's courier reference and ``docs/couriers.md``):
#:
#: * ``gosend``: ``62...``, no plus sign (integrators normalise ``08...`` to ``62...``; the
#:   create-booking samples' ``originContactPhone``/``destinationContactPhone``);
#: * ``goride``: ``62...``, no plus sign (our provisional dialect, modelled on GO-SEND's until
#:   GO-JEK documents its partner ride API);
#: * ``grabexpress``: E.164 without the plus sign (``sender``/``recipient.phone`` in Grab's
#:   Create Delivery);
#: * ``lalamove``: E.164 with the plus sign (``sender``/``recipients[].phone`` of
#:   ``POST /v3/orders``; Lalamove answers ``ERR_INVALID_PHONE_NUMBER`` otherwise).
DIALECTS = {
    "gosend": e164_digits,
    "goride": e164_digits,
    "grabexpress": e164_digits,
    "lalamove": e164,
}


def written(text: str, dialect: str) -> str:
    """``text`` (normally the E.164 of a neutral order's contact) in the form ``dialect``'s
    provider documents (:data:`DIALECTS`); no number stays none.

    :raises KeyError: an unknown dialect (a programming error)
    :raises InvalidPhoneNumber: ``text`` is not a phone number at all
    """
    return DIALECTS[dialect](text)
