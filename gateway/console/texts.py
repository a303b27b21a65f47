"""Texts the console shows that are data elsewhere in the core: statuses, roles, timeline
entries, the core's settings' labels and help, and messages of the operations the console
runs. Templates pass them through ``_()`` as values, so ``pybabel extract`` cannot see them
there; listing them here keeps them in the catalogue (``scripts/translations``).

Services' titles are not here: each service gives its own (``Service.titles``). Settings of
plugins and couriers show their own English help; only the core's are translated.
"""

from __future__ import annotations

from .i18n import N_

#: ``gateway.statuses.Status`` values, and the dashboard's labels of them
STATUSES = (
    N_("received"), N_("dispatching"), N_("outcome_unknown"), N_("booked"),
    N_("driver_assigned"), N_("picked_up"), N_("delivered"), N_("returned"), N_("no_driver"),
    N_("cancelled"), N_("failed"), N_("held_for_budget"), N_("Held for budget"),
    N_("Received"), N_("Dispatching"), N_("Outcome unknown"), N_("Booked"),
    N_("Driver assigned"), N_("Picked up"), N_("Delivered"), N_("Returned"), N_("No driver"),
    N_("Cancelled"), N_("Failed"),
)

#: console roles (``roles.ROLES``) and key types (``gateway.keys``)
PEOPLE_AND_KEYS = (
    N_("admin"), N_("operator"), N_("auditor"), N_("agency_staff"), N_("agency_manager"),
    N_("fleet_dispatch"),
    N_("live"), N_("test"), N_("live key"), N_("test key"),
)

#: a request's timeline (``timeline.py``): kinds of entry and the states of attempts,
#: callbacks and reports
TIMELINE = (
    N_("request"), N_("status"), N_("event"), N_("attempt"), N_("failover"), N_("callback"),
    N_("applied"), N_("ignored"), N_("pending"), N_("unknown"), N_("ok"), N_("temporary"),
    N_("rejected"), N_("released"), N_("gave_up"),
    N_("circuit closed"), N_("circuit half_open"), N_("circuit open"),
)

#: why ``gateway.audit`` finds the chain broken
AUDIT_CHAIN = (
    N_("content does not match its hash (edited)"),
    N_("does not link to the previous record"),
)

#: the core's parts of a service's and a courier's settings (``gateway.settings``), as the
#: settings form labels them (``forms.label``)
SETTINGS = (
    N_("Enabled"), N_("Retention days"), N_("Couriers"), N_("Limits"),
    N_("Timeout seconds"), N_("Failure threshold"), N_("Window seconds"),
    N_("Cooldown seconds"), N_("Max weight grams"), N_("Max side cm"),
    N_("Max passengers"),
    N_("Days after a request ends before its personal data is purged."),
    N_("Couriers to try, in order; a {name: weight} group is tried in a weighted random "
       "order (e.g. to share traffic between providers)."),
    N_("The adapter type; defaults to the entry's name."),
    N_("This entry talks to a simulator: the only kind test keys reach."),
    N_("Use only text, numbers, true/false, null, lists and mappings."),
    N_("A reference is {$env: NAME} (with an optional default) or {$file: PATH}."),
    N_("Only a field declared secret may read an environment variable or a file "
       "($env/$file); type the value itself here."),
)

#: refusals of the own fleet's steps (``gateway.fleet``) shown on the fleet board
FLEET = (
    N_("The delivery PIN is missing or wrong."),
    N_("Too many wrong PINs; the dispatch office must confirm this delivery."),
)

#: the fixed messages of marshmallow's fields, as intake gives them for a field (the request
#: form and the spreadsheet preview show them under the field or beside the row); a service's
#: own messages and those with values in them stay as the service wrote them
INTAKE_MESSAGES = (
    N_("Missing data for required field."), N_("Field may not be null."),
    N_("Not a valid string."), N_("Not a valid integer."), N_("Not a valid number."),
    N_("Not a valid boolean."), N_("Not a valid date."), N_("Not a valid list."),
    N_("Not a valid mapping type."), N_("Not a valid email address."), N_("Not a valid URL."),
    N_("Invalid value."), N_("Invalid type."), N_("Invalid input type."), N_("Unknown field."),
    N_("Number too large."),
    N_("Special numeric values (nan or infinity) are not permitted."),
)
