"""Storage: the only package that imports SQLAlchemy, SQLModel and Alembic."""
