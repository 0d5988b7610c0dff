"""Alembic environment: runs on the connection broker.storage.migrate() hands over."""

from alembic import context
from queuehall.broker.storage import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # run from the alembic CLI: use sqlalchemy.url from the ini
    from sqlalchemy import create_engine

    with create_engine(context.config.get_main_option("sqlalchemy.url") or "").begin() as conn:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
