"""Alembic environment: migrations always run programmatically on a connection we pass in."""

from __future__ import annotations

from alembic import context

from chargeback_engine.costdb.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
