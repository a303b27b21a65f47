"""Console users: created from the CLI or the console, signed in with a password hashed by
werkzeug (scrypt).

An account of an agency role (``roles.AGENCY_ROLES``) belongs to exactly one agency and one
key type (``live`` or ``test``); an account of the gateway's own roles belongs to none.
Removing an agency account deactivates it (its sessions stop at the next page; its name stays
in the audit trail and is never given to someone else)."""

from __future__ import annotations

import re

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ..agencies import find_agency
from ..events import Event
from ..keys import KEY_TYPES
from ..models import AdminUser, utcnow
from .roles import AGENCY_ROLES, ROLES

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 10
LANGUAGES = ("id", "en")

# Checked against when a username is unknown, so a wrong name costs as long as a wrong password
# and the time taken does not tell which names exist: one per hashing method in use, made the
# first time it is needed (the method is a setting, ``console.password_hash``).
_UNKNOWN_USER_HASHES: dict[str, str] = {}


def _hash_method(gateway) -> str:
    return gateway.settings["console"]["password_hash"]


def _unknown_user_hash(method: str) -> str:
    if method not in _UNKNOWN_USER_HASHES:
        _UNKNOWN_USER_HASHES[method] = generate_password_hash(
            "no such user, no such password", method=method)
    return _UNKNOWN_USER_HASHES[method]


class AdminUserError(Exception):
    pass


def create_admin(gateway, username: str, password: str, role: str, actor: str = "cli",
                 language: str = "id", agency: str | None = None,
                 key_type: str = "live") -> AdminUser:
    """Create a console user.

    :param agency: for an agency role, the agency's id or name (required); never for the
        gateway's own roles
    :param key_type: for an agency role: the world it sees, ``live`` or ``test``
    :raises AdminUserError: a bad name, role, password, agency or key type, or a name taken
    """
    if not USERNAME_PATTERN.match(username or ""):
        raise AdminUserError("a username is 2-64 lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AdminUserError(f"role must be one of {', '.join(ROLES)}")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AdminUserError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if role in AGENCY_ROLES:
        if not agency:
            raise AdminUserError(f"role {role} needs an agency (--agency)")
        if key_type not in KEY_TYPES:
            raise AdminUserError(f"key type must be one of {', '.join(KEY_TYPES)}")
    elif agency:
        raise AdminUserError(f"role {role} is the gateway's own: it belongs to no agency")
    with gateway.db.write() as session:
        agency_id = None
        if role in AGENCY_ROLES:
            found = find_agency(session, agency)
            if found is None:
                raise AdminUserError(f"no agency with id or name {agency!r}")
            agency_id = found.id
        if session.execute(select(AdminUser).where(AdminUser.username == username)
                           ).scalar_one_or_none():
            raise AdminUserError(f"a console user named {username!r} already exists")
        user = AdminUser(username=username, password_hash=generate_password_hash(
                             password, method=_hash_method(gateway)),
                         role=role, language=language, agency_id=agency_id,
                         key_type=key_type if agency_id else None)
        session.add(user)
        details = {"role": role}
        if agency_id:
            details.update(agency_id=agency_id, key_type=key_type)
        gateway.track(session, Event("admin.create", actor=actor, target=f"admin:{username}",
                                     details=details))
    return user


def deactivate_admin(gateway, user_id: str, actor: str) -> AdminUser:
    """Remove a console user: deactivate it, so its sessions stop and its name stays taken.

    :raises AdminUserError: no such user
    """
    with gateway.db.write() as session:
        user = session.get(AdminUser, user_id)
        if user is None:
            raise AdminUserError("no such console user")
        user.active = False
        gateway.track(session, Event("admin.remove", actor=actor,
                                     target=f"admin:{user.username}",
                                     details={"role": user.role, "agency_id": user.agency_id}))
        session.flush()
        session.expunge(user)
        return user


def agency_accounts(gateway, agency_id: str) -> list[AdminUser]:
    """The active console accounts of one agency, by name."""
    with gateway.db.read() as session:
        users = session.execute(select(AdminUser).where(
            AdminUser.agency_id == agency_id, AdminUser.active.is_(True))
            .order_by(AdminUser.username)).scalars().all()
        session.expunge_all()
        return list(users)


def authenticate(gateway, username: str, password: str) -> AdminUser | None:
    """The active user with this name and password, or None (in constant-ish time)."""
    with gateway.db.read() as session:
        user = session.execute(select(AdminUser).where(AdminUser.username == username)
                               ).scalar_one_or_none()
        if user is None or not user.active:
            check_password_hash(_unknown_user_hash(_hash_method(gateway)), password)
            return None
        if not check_password_hash(user.password_hash, password):
            return None
        session.expunge(user)
        return user


def mark_signed_in(gateway, user_id: str) -> None:
    with gateway.db.write() as session:
        user = session.get(AdminUser, user_id)
        if user is not None:
            user.last_sign_in_at = utcnow()


def set_language(gateway, user_id: str, language: str) -> None:
    if language not in LANGUAGES:
        return
    with gateway.db.write() as session:
        user = session.get(AdminUser, user_id)
        if user is not None:
            user.language = language


def list_admins(gateway) -> list[AdminUser]:
    with gateway.db.read() as session:
        users = session.execute(select(AdminUser).order_by(AdminUser.username)).scalars().all()
        session.expunge_all()
        return list(users)
