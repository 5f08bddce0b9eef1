"""The submission database schema and engine set-up (SQLAlchemy Core; SQLite or PostgreSQL).

One table, ``submissions``; the README documents it. Types are chosen to behave the same on SQLite and
PostgreSQL: timestamps are ``DateTime(timezone=True)`` holding UTC, the model's prediction and the PHI flags are
JSON text, and the constraints (unique SHA-256, label and status vocabularies, consent) are CHECK/UNIQUE
constraints the database enforces, not just the Python code.

SQLite connections get, from a connect event: ``busy_timeout`` (30 s: writers from other processes wait instead
of failing), ``journal_mode=WAL`` (readers do not block the writer), ``synchronous=FULL`` (a committed
submission survives a power cut) and ``foreign_keys=ON``.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

__all__ = ["BUSY_TIMEOUT_MS", "STATUSES", "create_schema", "make_engine", "metadata", "sqlite_url", "submissions"]

STATUSES: tuple[str, ...] = ("pending", "accepted", "rejected")
BUSY_TIMEOUT_MS = 30_000
_SCHEMA_LOCK_KEY = 0x6D616D6D6F  # "mammo": PostgreSQL advisory lock serializing CREATE TABLE

metadata = MetaData()

submissions = Table(
    "submissions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, comment="SHA-256 of the stored, de-identified file"),
    Column("stored_path", String(512), nullable=False, comment="file path relative to the store root"),
    Column("original_name", String(255), comment="sanitized display name of the upload (never used as a path)"),
    Column("media_type", String(64), nullable=False),
    Column("laterality", String(1)),
    Column("view", String(3)),
    Column("density", SmallInteger, comment="submitter's BI-RADS density 1-4"),
    Column("pathology", String(16), comment="submitter's label: benign | malignant"),
    Column("submitter", String(255)),
    Column("consent", Boolean(create_constraint=False), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False, comment="UTC"),
    Column("prediction", Text, comment="the model's prediction at submission time, JSON"),
    Column("model_version", String(255)),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("reviewed_at", DateTime(timezone=True), comment="UTC"),
    Column("reviewer", String(255)),
    Column("phi_flags", Text, nullable=False, server_default="[]", comment="JSON list, e.g. burned-in-annotation"),
    CheckConstraint("length(sha256) = 64", name="ck_submissions_sha256"),
    CheckConstraint("laterality IS NULL OR laterality IN ('L', 'R')", name="ck_submissions_laterality"),
    CheckConstraint("view IS NULL OR view IN ('CC', 'MLO')", name="ck_submissions_view"),
    CheckConstraint("density IS NULL OR density BETWEEN 1 AND 4", name="ck_submissions_density"),
    CheckConstraint("pathology IS NULL OR pathology IN ('benign', 'malignant')", name="ck_submissions_pathology"),
    CheckConstraint("consent = TRUE", name="ck_submissions_consent"),
    CheckConstraint("status IN ('pending', 'accepted', 'rejected')", name="ck_submissions_status"),
    UniqueConstraint("sha256", name="uq_submissions_sha256"),
)
Index("ix_submissions_status", submissions.c.status)


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of an SQLite database file."""
    return f"sqlite:///{Path(path).resolve()}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for `url`; SQLite engines get the pragmas of the module notes.

    Raises
    ------
    ValueError
        The URL cannot be parsed or names a database other than SQLite or PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValueError(
            f"not a database URL: {url!r} ({exc}). Use e.g. 'sqlite:////path/submissions.db' or "
            "'postgresql+psycopg://user:password@host/dbname'."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise ValueError("an SQLite submission store needs a file (an in-memory database is not shared)")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"unsupported database {backend!r} in {url!r}; use SQLite or PostgreSQL")


def create_schema(engine: Engine, attempts: int = 20) -> None:
    """Create the tables and indexes if missing; safe when several processes start at once.

    On PostgreSQL a transaction-scoped advisory lock serializes the ``CREATE TABLE``. On SQLite (and as a
    fallback everywhere) a failure because another process created the table first is retried after
    re-checking what exists.

    Raises
    ------
    sqlalchemy.exc.DBAPIError
        The schema still cannot be created after `attempts` tries (e.g. no permission).
    """
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                if engine.dialect.name == "postgresql":
                    connection.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
                metadata.create_all(connection, checkfirst=True)
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            if _schema_complete(engine):
                return
            time.sleep(0.05 * (attempt + 1))


def _schema_complete(engine: Engine) -> bool:
    try:
        inspector = inspect(engine)
        if not inspector.has_table("submissions"):
            return False
        return "ix_submissions_status" in {index["name"] for index in inspector.get_indexes("submissions")}
    except DBAPIError:
        return False
