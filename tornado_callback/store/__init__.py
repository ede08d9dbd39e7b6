"""Persistence: SQLAlchemy models, queries and migrations. Knows nothing of HTTP."""
