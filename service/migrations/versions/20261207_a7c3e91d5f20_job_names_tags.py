"""Jobs get a name and tags their owner sets at submit and edits later.

Revision ID: a7c3e91d5f20
Revises: 4d84bbe119ab
Create Date: 2026-12-07 01:45:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "a7c3e91d5f20"
down_revision = "4d84bbe119ab"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        # server_default fills the rows already there; new rows get [] from the model too.
        batch_op.add_column(
            sa.Column(
                "tags",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'[]'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("tags")
        batch_op.drop_column("name")
