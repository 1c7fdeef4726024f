"""Admin keys, per-tenant password policy and CORS origins, normalised usernames (SPEC §9, §11, §4).

Usernames become NFC + case-folded. If two existing usernames of one tenant
normalise to the same name, the upgrade stops with one message naming the rows:
an operator must rename or delete all but one (Baton cannot pick the account to keep).

Revision ID: 0004_admin
Revises: 0002
Create Date: 2026-11-28
"""
import unicodedata
from collections import defaultdict

import click
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_admin"
down_revision = "0003_hardening"
branch_labels = None
depends_on = None


MAX_USERNAME_LENGTH = 150  # the users.username CHECK of 0001


def normalize(username):
    # Kept in step with app.services.accounts.normalize_username (a migration is frozen code).
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", username).casefold())


def upgrade():
    op.add_column("tenants", sa.Column("password_min_length", sa.Integer(), nullable=False,
                                       server_default="8"))
    op.add_column("tenants", sa.Column("cors_origins", postgresql.ARRAY(sa.Text()),
                                       nullable=False, server_default=sa.text("'{}'::text[]")))
    op.create_check_constraint(op.f("ck_tenants_password_min_length_range"), "tenants",
                               "password_min_length BETWEEN 1 AND 1024")
    op.create_table(
        "admin_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("octet_length(digest) = 32", name=op.f("ck_admin_keys_digest_is_sha256")),
        sa.CheckConstraint("scope IN ('admin', 'introspect')", name=op.f("ck_admin_keys_scope_known")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_admin_keys_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_admin_keys_digest")),
    )
    op.create_index("ix_admin_keys_tenant_id", "admin_keys", ["tenant_id"])
    normalize_usernames()


def normalize_usernames():
    conn = op.get_bind()
    # Serialise with anything still creating users while the migration runs.
    conn.execute(sa.text("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"))
    rows = conn.execute(sa.text("SELECT u.id, t.slug, u.username FROM users u"
                                " JOIN tenants t ON t.id = u.tenant_id ORDER BY u.id")).all()
    groups = defaultdict(list)
    for row in rows:
        groups[(row.slug, normalize(row.username))].append(row)
    clashes = [(key, found) for key, found in groups.items() if len(found) > 1]
    # Names that cannot be stored or logged in with once normalised: case-folding can
    # lengthen a name past the column's limit (ß becomes ss), and login refuses a name with
    # surrounding spaces.
    unusable = [r for r in rows if len(normalize(r.username)) > MAX_USERNAME_LENGTH
                or r.username != r.username.strip()]
    if clashes or unusable:
        described = "; ".join(
            [f"tenant {slug!r}: " + ", ".join(f"user id {r.id} {r.username!r}" for r in found)
             + f" all become {name!r}" for (slug, name), found in clashes]
            + [f"tenant {r.slug!r}: user id {r.id} {r.username!r} has surrounding spaces or "
               f"becomes longer than {MAX_USERNAME_LENGTH} characters" for r in unusable]
        )
        # A ClickException: `flask db upgrade` prints it as one `Error:` line and exits 1.
        raise click.ClickException(
            f"cannot normalise usernames, rename or delete all but one of each group and "
            f"upgrade again: {described}"
        )
    changed = [{"id": r.id, "name": normalize(r.username)} for r in rows
               if normalize(r.username) != r.username]
    if changed:
        # Two steps, so a swap of names never meets the unique constraint half way.
        conn.execute(sa.text("UPDATE users SET username = chr(1) || 'renaming ' || id::text"
                             " WHERE id = :id"), changed)
        conn.execute(sa.text("UPDATE users SET username = :name WHERE id = :id"), changed)


def downgrade():
    # Normalised usernames stay normalised: the original spelling is not kept anywhere.
    op.drop_index("ix_admin_keys_tenant_id", table_name="admin_keys")
    op.drop_table("admin_keys")
    op.drop_constraint(op.f("ck_tenants_password_min_length_range"), "tenants", type_="check")
    op.drop_column("tenants", "cors_origins")
    op.drop_column("tenants", "password_min_length")
