"""Recovery codes (SPEC §13.1): ten single-use codes, shown once, stored only as digests.

A code is 80 random bits, written as four groups of four base32 characters
(`abcd-efgh-ijkl-mnop`); it is compared without dashes, spaces or case. SHA-256 without a
salt is enough for random codes of this size, as for refresh tokens (docs/design.md).
Functions run inside the caller's transaction.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import select

from app.extensions import db
from app.models import RecoveryCode

COUNT = 10
CODE_BYTES = 10  # 80 bits: 16 base32 characters
MAX_CODE_LENGTH = 64  # what a caller may send, spaces and dashes included


def _new_code() -> str:
    text = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode("ascii").lower()
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def digest(code: str) -> bytes:
    normalized = "".join(code.split()).replace("-", "").lower()
    return hashlib.sha256(b"baton-recovery:" + normalized.encode("utf-8")).digest()


def replace_codes(tenant_id: int, user_id: int, now: datetime) -> list[str]:
    """A new set for the user; the old set dies. Returns the codes (shown once)."""
    delete_codes(user_id)
    codes = [_new_code() for _ in range(COUNT)]
    db.session.execute(sa.insert(RecoveryCode), [
        {"tenant_id": tenant_id, "user_id": user_id, "digest": digest(code), "created_at": now}
        for code in codes])
    return codes


def delete_codes(user_id: int) -> None:
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))


def consume(user_id: int, code: str, now: datetime) -> bool:
    """Use one of the user's unused codes; False if it is none of them. The UPDATE takes the
    row's lock, so of two parallel uses of one code exactly one succeeds."""
    if not code or len(code) > MAX_CODE_LENGTH:
        return False
    used = db.session.execute(
        sa.update(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.digest == digest(code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=now).returning(RecoveryCode.id)
    ).first()
    return used is not None


def remaining(user_id: int) -> int:
    return db.session.execute(
        select(sa.func.count()).select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    ).scalar_one()
