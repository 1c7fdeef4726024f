"""Usernames and the password policy (SPEC §11): one place for the CLI, admin API and reset."""
from __future__ import annotations

import unicodedata

import sqlalchemy as sa

from app.models import User
from app.models.tenant import MAX_PASSWORD_LENGTH
from app.models.user import MAX_USERNAME_LENGTH
from app.runtime import runtime
from app.services.errors import InvalidInput
from app.services.errors import PasswordPolicyViolation
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction

UserRef = str | int  # a username (CLI) or a user id (admin API)


def normalize_username(raw: str) -> str:
    """NFC, then case-folded (then NFC again, so the stored form is canonical): `Alice` is `alice`.

    The migration 0004_admin applies the same function to existing rows.
    """
    if raw != raw.strip():
        raise InvalidInput("username must not start or end with spaces")
    name = unicodedata.normalize("NFC", unicodedata.normalize("NFC", raw).casefold())
    if not name or len(name) > MAX_USERNAME_LENGTH or "\x00" in name:
        raise InvalidInput(f"username must be 1-{MAX_USERNAME_LENGTH} characters, no NUL")
    return name


def check_password(password: str, min_length: int) -> None:
    """Raise InvalidRequest (one clear sentence) for a password the tenant's policy refuses."""
    length = len(unicodedata.normalize("NFC", password))
    if "\x00" in password:
        raise PasswordPolicyViolation("password must not contain NUL characters")
    if not min_length <= length <= MAX_PASSWORD_LENGTH:
        raise PasswordPolicyViolation(
            f"password must be {min_length} to {MAX_PASSWORD_LENGTH} characters long"
        )
    if not password.strip():
        raise PasswordPolicyViolation("password must not be only whitespace")


def hash_new_password(tenant_slug: str, password: str) -> str:
    """Apply the tenant's password policy, then hash (slow: call outside any lock)."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        min_length = tenant.password_min_length
    check_password(password, min_length)
    return runtime().passwords.hash(password)


def user_clause(tenant_id: int, who: UserRef) -> sa.ColumnElement[bool]:
    """The WHERE clause naming one user of the tenant, by id or by (normalised) username."""
    if isinstance(who, int):
        return sa.and_(User.tenant_id == tenant_id, User.id == who)
    return sa.and_(User.tenant_id == tenant_id, User.username == normalize_username(who))
