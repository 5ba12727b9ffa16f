"""The cost database: connection, tables and migrations. Finance writes it, insight reads it.

:func:`~chargeback_engine.costdb.connection.open_database` creates or upgrades the schema
with the Alembic migrations in ``migrations/``; :mod:`~chargeback_engine.costdb.tables`
defines its append-only tables.
"""
