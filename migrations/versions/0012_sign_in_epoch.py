"""users.sign_in_epoch: a count of the user's revoke-alls; a sign-in in progress (challenge,
unredeemed authorization code) is bound to the value it began under, so none outlives a
disable, a password change, a logout everywhere or the admin's factor removal. And a
passwordless start remembers the address counter and window it was counted in, so that its
completion gives the count back there and nowhere else.

A constant default: no table rewrite (PostgreSQL 11+).

Revision ID: 0012_sign_in_epoch
Revises: 0011_token_session_key
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_sign_in_epoch"
down_revision = "0011_token_session_key"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("sign_in_epoch", sa.Integer(), server_default="0",
                                     nullable=False))
    op.add_column("challenge_sessions", sa.Column("counted_address", sa.Text(), nullable=True))
    op.add_column("challenge_sessions", sa.Column("counted_window", sa.DateTime(timezone=True),
                                                  nullable=True))


def downgrade():
    op.drop_column("challenge_sessions", "counted_window")
    op.drop_column("challenge_sessions", "counted_address")
    op.drop_column("users", "sign_in_epoch")
