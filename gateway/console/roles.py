"""Console roles and what each may do, answered through the ``permission_allowed`` hook.

``admin`` may do everything, ``operator`` handles requests and the own-fleet dispatch,
``auditor`` reads everything and changes nothing. The console shows a link, a button or a
form only when the same check that guards its view allows it, so what a role may not do is
neither shown nor accepted.
"""

from __future__ import annotations

from ..hookspecs import hookimpl

ROLES = ("admin", "operator", "auditor")

#: actions that only read
READ_ACTIONS = frozenset({
    "console:dashboard",
    "console:requests:read",
    "console:fleet:read",
    "console:agencies:read",
    "console:config:read",
    "console:audit:read",
    "console:queues:read",
})

OPERATOR_ACTIONS = frozenset({
    "console:requests:act",        # cancel, retry dispatch
    "console:requests:personal",   # see names, phones and addresses unmasked
    "console:fleet:act",           # assign, picked up, complete with the PIN
})

ADMIN_ACTIONS = frozenset({
    "console:agencies:manage",     # create agencies, issue and revoke keys
    "console:config:edit",         # enable, disable, edit and roll back settings
    "console:queues:manage",       # retry or discard failed jobs
    "console:budgets:manage",      # set budgets, release or refuse requests held for them
})

ROLE_ACTIONS = {
    "auditor": READ_ACTIONS,
    "operator": READ_ACTIONS | OPERATOR_ACTIONS,
    "admin": READ_ACTIONS | OPERATOR_ACTIONS | ADMIN_ACTIONS,
}

ALL_ACTIONS = ROLE_ACTIONS["admin"]


@hookimpl
def permission_allowed(actor, action, resource):
    if not actor or actor.get("type") != "admin":
        return None
    return action in ROLE_ACTIONS.get(actor.get("role"), ())
