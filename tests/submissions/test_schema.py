"""The submissions table: the database itself enforces the constraints, on SQLite and PostgreSQL; engines and
schema creation behave (pragmas, URL errors, concurrent creation)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from mammo_utils.submissions.schema import create_schema, make_engine, sqlite_url, submissions

COLUMNS = [
    "id",
    "sha256",
    "stored_path",
    "original_name",
    "media_type",
    "laterality",
    "view",
    "density",
    "pathology",
    "submitter",
    "consent",
    "submitted_at",
    "prediction",
    "model_version",
    "status",
    "reviewed_at",
    "reviewer",
    "phi_flags",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "db" / "submissions.db")
    else:
        url = request.getfixturevalue("postgres_url")
        with create_engine(url).begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS submissions CASCADE"))
    made = make_engine(url)
    create_schema(made)
    create_schema(made)  # idempotent
    yield made
    made.dispose()


def _row(**changes):
    row = {
        "sha256": "a" * 64,
        "stored_path": "files/aa/" + "a" * 64 + ".png",
        "media_type": "image/png",
        "consent": True,
        "submitted_at": datetime.now(UTC),
    }
    return row | changes


def test_table_has_the_documented_columns_and_defaults(engine):
    assert [column["name"] for column in inspect(engine).get_columns("submissions")] == COLUMNS
    with engine.begin() as connection:
        connection.execute(insert(submissions), _row())
        stored = connection.execute(select(submissions)).one()
    assert (stored.status, stored.phi_flags, stored.consent) == ("pending", "[]", True)


@pytest.mark.parametrize(
    "changes",
    [
        {"density": 7},
        {"density": 0},
        {"pathology": "maybe"},
        {"status": "approved"},
        {"consent": False},
        {"laterality": "X"},
        {"view": "ML"},
        {"sha256": "abc"},
    ],
    ids=["density-7", "density-0", "pathology", "status", "no-consent", "laterality", "view", "short-sha"],
)
def test_database_rejects_values_outside_the_vocabulary(engine, changes):
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(submissions), _row(**changes))
    with engine.connect() as connection:
        assert connection.execute(select(submissions)).all() == []


def test_database_rejects_a_second_row_with_the_same_sha256(engine):
    with engine.begin() as connection:
        connection.execute(insert(submissions), _row())
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(submissions), _row(stored_path="elsewhere"))


def test_make_engine_errors_and_driver(tmp_path):
    with pytest.raises(ValueError, match="not a database URL"):
        make_engine("not a url at all")
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        make_engine("mysql://user@localhost/db")
    with pytest.raises(ValueError, match="needs a file"):
        make_engine("sqlite://")
    engine = make_engine("postgresql://user@localhost/db")  # no connection is made yet
    assert engine.url.drivername == "postgresql+psycopg"
    sqlite = make_engine(sqlite_url(tmp_path / "new" / "folder" / "x.db"))
    assert (tmp_path / "new" / "folder").is_dir()
    with sqlite.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    sqlite.dispose()


def test_schema_creation_races_are_harmless(tmp_path):
    url = sqlite_url(tmp_path / "race.db")
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def create() -> None:
        engine = make_engine(url)
        try:
            start.wait()
            create_schema(engine)
        except BaseException as exc:  # collected and reported by the assertion below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert inspect(make_engine(url)).has_table("submissions")
