"""Declarative base with a naming convention, so constraints have stable names."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def timestamp(nullable: bool = False) -> Any:
    """A timezone-aware timestamp column."""
    return mapped_column(sa.DateTime(timezone=True), nullable=nullable)


class UserOwned:
    """The keys of a row that belongs to one user of one tenant: an identity id, and the
    tenant and user, deleted with either."""

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True,
                                    sort_order=-3)
    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE"), sort_order=-2)
    user_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), sort_order=-1)
