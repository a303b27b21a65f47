"""Console users: created from the CLI, signed in with a password hashed by werkzeug (scrypt)."""

from __future__ import annotations

import re

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ..events import Event
from ..models import AdminUser, utcnow
from .roles import ROLES

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
                 language: str = "id") -> AdminUser:
    if not USERNAME_PATTERN.match(username or ""):
        raise AdminUserError("a username is 2-64 lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AdminUserError(f"role must be one of {', '.join(ROLES)}")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AdminUserError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    with gateway.db.write() as session:
        if session.execute(select(AdminUser).where(AdminUser.username == username)
                           ).scalar_one_or_none():
            raise AdminUserError(f"a console user named {username!r} already exists")
        user = AdminUser(username=username, password_hash=generate_password_hash(
                             password, method=_hash_method(gateway)),
                         role=role, language=language)
        session.add(user)
        gateway.track(session, Event("admin.create", actor=actor, target=f"admin:{username}",
                                     details={"role": role}))
    return user


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
