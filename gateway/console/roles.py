"""Console roles and what each may do, answered through the ``permission_allowed`` hook.

``admin`` may do everything, ``operator`` handles requests and the own-fleet dispatch,
``auditor`` reads everything and changes nothing. The agency roles belong to one agency's
own people: ``agency_staff`` sees that agency's requests (exactly what its API key of the
account's type would see, ``agency_actor.py``) and makes new ones by form or by
spreadsheet; ``agency_manager`` also adds and removes the agency's staff and reconciles its
monthly statements with a provider's invoice. The console shows a link, a button or a
form only when the same check that guards its view allows it, so what a role may not do is
neither shown nor accepted.
"""

from __future__ import annotations

from ..hookspecs import hookimpl

STAFF_ROLES = ("admin", "operator", "auditor")
AGENCY_ROLES = ("agency_staff", "agency_manager")
ROLES = STAFF_ROLES + AGENCY_ROLES

#: actions that only read
READ_ACTIONS = frozenset({
    "console:dashboard",
    "console:requests:read",
    "console:fleet:read",
    "console:agencies:read",
    "console:config:read",
    "console:audit:read",
    "console:queues:read",
    "console:skm:read",            # the survey's index and figures
    "console:reports:read",        # the reports page: charts, tables, CSV, map
    "console:statements:read",     # monthly statements (an agency role: its own only)
    "console:messages:read",       # notices to citizens, numbers masked
})

OPERATOR_ACTIONS = frozenset({
    "console:requests:act",        # cancel, retry dispatch
    "console:requests:personal",   # see names, phones and addresses unmasked
    "console:fleet:act",           # assign, picked up, complete with the PIN
    "console:skm:export",          # the survey's answers and complaints, their text opened
    "console:statements:reconcile",  # match a provider's invoice against a statement
})

ADMIN_ACTIONS = frozenset({
    "console:agencies:manage",     # create agencies, issue and revoke keys
    "console:config:edit",         # enable, disable, edit and roll back settings
    "console:queues:manage",       # retry or discard failed jobs
    "console:budgets:manage",      # set budgets
    "console:requests:upload",     # upload a spreadsheet for an agency it chooses
})

AGENCY_STAFF_ACTIONS = frozenset({
    "console:requests:read",       # its own agency's requests only (agency_actor.py)
    "console:requests:create",     # a new request by form, through intake
    "console:reports:read",        # its own agency's reports only (views/reports.py)
    "console:statements:read",     # its own agency's statements only (views/statements.py)
    "console:statements:own",      # the menu's link to them
    "console:messages:read",       # its own agency's notices only (agency_actor.py)
    "console:requests:upload",     # requests by spreadsheet (its own agency's uploads only)
})

STAFF_MANAGE = "console:staff:manage"   # add and remove agency staff (whose: agency_actor.py)
#: release or refuse requests held because a budget is used up (an agency manager: its own
#: agency's only, agency_actor.py)
BUDGET_DECIDE = "console:budgets:decide"

ROLE_ACTIONS = {
    "auditor": READ_ACTIONS,
    "operator": READ_ACTIONS | OPERATOR_ACTIONS,
    "admin": READ_ACTIONS | OPERATOR_ACTIONS | ADMIN_ACTIONS | {STAFF_MANAGE, BUDGET_DECIDE},
    "agency_staff": AGENCY_STAFF_ACTIONS,
    "agency_manager": AGENCY_STAFF_ACTIONS | {STAFF_MANAGE, BUDGET_DECIDE, "console:staff:own",
                                              "console:statements:reconcile"},
}

ALL_ACTIONS = frozenset().union(*ROLE_ACTIONS.values())


@hookimpl
def permission_allowed(actor, action, resource):
    if not actor or actor.get("type") != "admin":
        return None
    return action in ROLE_ACTIONS.get(actor.get("role"), ())
