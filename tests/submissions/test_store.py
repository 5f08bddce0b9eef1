"""The submission store on SQLite and on a throwaway PostgreSQL server: dedupe, de-identification on the way in,
bad inputs, review, manifest, concurrent writers and crash consistency. All images are synthetic."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import signal
import time
from pathlib import Path

import _store_worker
import numpy as np
import pydicom
import pytest
from _phi import PHI_STRINGS, phi_dicom
from _store_worker import SHARED_SEEDS, synthetic_png, worker_seeds
from sqlalchemy import create_engine, text

from mammo_utils.datasets.schema import MANIFEST_COLUMNS
from mammo_utils.imaging.io import read_mammogram
from mammo_utils.submissions.fields import StoreError, SubmissionError, SubmissionNotFound
from mammo_utils.submissions.store import DATABASE_URL_ENV, Store, default_root

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str | None:
    """None (the default SQLite file under the store root) or the URL of an emptied PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS submissions CASCADE"))
        connection.execute(text("DROP FUNCTION IF EXISTS synthetic_failure() CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(backend, root):
    with Store(url=backend, root=root) as opened:
        yield opened


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "files").rglob("*") if path.is_file())


def test_submit_stores_a_deidentified_copy_and_the_labels(store, root):
    item = store.submit(
        synthetic_png(1),
        filename="synthetic-LCC.png",
        density="c",
        pathology="MALIGNANT",
        consent=True,
        submitter="dr. synthetic",
        prediction={"malignancy_prob": np.float32(0.25)},
        model_version="v3",
    )
    assert (item.density, item.pathology, item.laterality, item.view) == (3, "malignant", "L", "CC")
    assert (item.status, item.duplicate, item.consent, item.model_version) == ("pending", False, True, "v3")
    assert item.prediction == {"malignancy_prob": pytest.approx(0.25)}
    assert item.submitted_at.tzinfo is not None and abs(time.time() - item.submitted_at.timestamp()) < 60
    assert item.image_path == root / "files" / item.sha256[:2] / f"{item.sha256}.png"
    assert hashlib.sha256(item.image_path.read_bytes()).hexdigest() == item.sha256
    assert np.array_equal(read_mammogram(item.image_path).pixels, read_mammogram(synthetic_png(1)).pixels)
    assert store.get(item.id) == item
    assert store.count() == 1 and store.orphans() == []


def test_same_bytes_twice_is_one_row_and_keeps_the_first_labels(store, root):
    first = store.submit(synthetic_png(2), consent=True, density=1, submitter="first")
    again = store.submit(synthetic_png(2), consent=True, density=4, pathology="benign", submitter="second")
    assert again.duplicate and not first.duplicate
    assert again.id == first.id and (again.density, again.pathology, again.submitter) == (1, None, "first")
    assert store.count() == 1 and len(stored_files(root)) == 1


def test_different_images_are_different_rows(store, root):
    ids = {store.submit(synthetic_png(seed), consent=True).id for seed in range(3)}
    assert len(ids) == 3 and store.count() == 3 and len(stored_files(root)) == 3


def test_same_dicom_is_deduplicated_after_deidentification(store, root, tmp_path):
    first = store.submit(phi_dicom(), filename="synthetic.dcm", consent=True)
    # the same image with other names and dates in its header de-identifies to the same bytes
    again = store.submit(phi_dicom(name="ROE^RICHARD", birth_date="19711111"), consent=True)
    assert again.duplicate and again.id == first.id and store.count() == 1
    other = store.submit(phi_dicom(sop_uid="1.2.826.0.1.3680043.8.498.999"), consent=True)
    assert not other.duplicate and store.count() == 2


def test_no_phi_reaches_the_stored_file_or_the_database(store, root):
    item = store.submit(phi_dicom(), filename="synthetic-upload.dcm", consent=True, submitter="reviewer-a")
    stored = item.image_path.read_bytes()
    row = repr(item) + store.submissions().to_json(date_format="iso") + store.manifest(None).to_json()
    database = b"".join(path.read_bytes() for path in root.glob("submissions.db*"))
    for phi in PHI_STRINGS:
        assert phi.encode() not in stored, phi
        assert phi not in row, phi
        assert phi.encode() not in database, phi
    assert item.media_type == "application/dicom" and item.phi_flags == ("burned-in-annotation",)
    assert np.array_equal(read_mammogram(item.image_path).pixels, read_mammogram(phi_dicom()).pixels)
    assert pydicom.dcmread(item.image_path).PatientIdentityRemoved == "YES"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"consent": False}, "consent is required"),
        ({"consent": "yes"}, "consent is required"),
        ({"consent": True, "density": 7}, "not a BI-RADS density: 7"),
        ({"consent": True, "pathology": "maybe"}, "not a pathology: 'maybe'"),
        ({"consent": True, "submitter": "x" * 300}, "submitter is too long"),
        ({"consent": True, "prediction": {"p": object()}}, "prediction cannot be stored as JSON"),
    ],
)
def test_bad_labels_are_refused_before_anything_is_written(store, root, kwargs, message):
    with pytest.raises(SubmissionError, match=message):
        store.submit(synthetic_png(3), **kwargs)
    assert store.count() == 0 and stored_files(root) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "synthetic.png: starts like a PNG file .* corrupt or truncated"),
        (b"just some text, not an image", "synthetic.png: not a recognised image format"),
    ],
)
def test_unreadable_images_are_refused(store, root, data, message):
    with pytest.raises(SubmissionError, match=message):
        store.submit(data, filename="synthetic.png", consent=True)
    assert store.count() == 0 and stored_files(root) == []


def test_missing_path_and_wrong_type_are_refused(store, tmp_path):
    with pytest.raises(SubmissionError, match="no such file"):
        store.submit(tmp_path / "absent.png", consent=True)
    with pytest.raises(TypeError, match="image bytes or a file path"):
        store.submit(12345, consent=True)


def test_upload_name_never_reaches_the_file_system(store, root, tmp_path):
    outside = tmp_path / "etc"
    outside.mkdir()
    item = store.submit(synthetic_png(4), filename="../../etc/passwd", consent=True)
    item2 = store.submit(synthetic_png(5), filename="..\\..\\evil\x00\x1b[31m.png", consent=True)
    assert item.original_name == "passwd" and item2.original_name == "evil[31m.png"
    assert list(outside.iterdir()) == []
    assert all(path.parent.parent == root / "files" for path in stored_files(root))
    assert {path.stem for path in stored_files(root)} == {item.sha256, item2.sha256}


def test_submit_from_a_path_uses_its_name_as_display_name(store, tmp_path):
    path = tmp_path / "synthetic_RIGHT_MLO.png"
    path.write_bytes(synthetic_png(6))
    item = store.submit(path, consent=True, pathology="B")
    assert (item.original_name, item.laterality, item.view, item.pathology) == (path.name, "R", "MLO", "benign")


def test_review_and_tables(store):
    a = store.submit(synthetic_png(7), filename="synthetic_LEFT_CC.png", consent=True, density=2, pathology="benign")
    b = store.submit(synthetic_png(8), consent=True)
    accepted = store.review(a.id, "Accepted", reviewer="radiologist-1")
    assert accepted.status == "accepted" and accepted.reviewer == "radiologist-1" and accepted.reviewed_at
    assert store.review(b.id, "rejected").status == "rejected"
    assert store.review(b.id, "pending").reviewed_at is None
    with pytest.raises(SubmissionError, match="unknown review status 'approved'"):
        store.review(a.id, "approved")
    with pytest.raises(SubmissionNotFound, match="no submission with id 999"):
        store.review(999, "accepted")
    with pytest.raises(SubmissionNotFound, match="no submission with id 999"):
        store.get(999)
    table = store.submissions()
    assert list(table["id"]) == [a.id, b.id] and list(table["status"]) == ["accepted", "pending"]
    assert str(table["density"].dtype) == "Int64" and table["density"].isna().tolist() == [False, True]
    assert store.count("accepted") == 1 and len(store.submissions("pending")) == 1
    manifest = store.manifest()
    assert list(manifest.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    row = manifest.iloc[0].drop("split").to_dict()
    assert row == {
        "image_path": str(a.image_path),
        "patient_id": f"submission-{a.id}",
        "laterality": "L",
        "view": "CC",
        "density": 2,
        "pathology": "benign",
        "source": "submission",
        "submission_id": a.id,
        "sha256": a.sha256,
    }
    assert len(manifest) == 1 and Path(manifest.image_path[0]).is_file() and manifest.split.isna().all()
    assert len(store.manifest("rejected")) == 0 and len(store.manifest(None)) == 2


def test_failed_row_insert_rolls_back_and_leaves_only_an_orphan(store, backend, root):
    store.submit(synthetic_png(9), consent=True)
    with store.engine.begin() as connection:  # a real database failure, raised after the row was inserted
        if store.engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER synthetic_failure AFTER INSERT ON submissions "
                    "WHEN NEW.submitter = 'fail' BEGIN SELECT RAISE(ABORT, 'synthetic failure'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION synthetic_failure() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN IF NEW.submitter = 'fail' THEN RAISE EXCEPTION 'synthetic failure'; "
                    "END IF; RETURN NEW; END $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER synthetic_failure AFTER INSERT ON submissions FOR EACH ROW "
                    "EXECUTE FUNCTION synthetic_failure()"
                )
            )
    with pytest.raises(StoreError, match="synthetic failure.*orphan"):
        store.submit(synthetic_png(10), consent=True, submitter="fail")
    assert store.count() == 1
    orphans = store.orphans()
    assert len(orphans) == 1 and len(stored_files(root)) == 2
    assert store.remove_orphans() == 1 and store.orphans() == [] and len(stored_files(root)) == 1
    assert store.submit(synthetic_png(10), consent=True).id  # the same image goes in once the failure is gone


def test_orphans_ignore_young_files_when_asked(store, root):
    item = store.submit(synthetic_png(11), consent=True)
    (root / "files" / "00").mkdir(exist_ok=True)
    stray = root / "files" / "00" / ("0" * 64 + ".png")
    stray.write_bytes(b"left by a crash")
    assert store.orphans() == [stray]
    assert store.remove_orphans(older_than=3600) == 0 and stray.exists()
    assert store.remove_orphans() == 1 and not stray.exists() and item.image_path.exists()


def test_deleted_file_is_rewritten_by_a_resubmission(store):
    item = store.submit(synthetic_png(12), consent=True)
    item.image_path.unlink()
    assert store.submit(synthetic_png(12), consent=True).duplicate and item.image_path.is_file()


def test_default_location_and_environment_url(tmp_path, monkeypatch):
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / "data" / "submissions"
    with Store() as opened:
        assert opened.url.endswith("/home/data/submissions/submissions.db")
        assert opened.submit(synthetic_png(13), consent=True).image_path.is_relative_to(default_root())
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with Store(root=tmp_path / "r") as opened:
        assert opened.url.endswith("elsewhere.db") and opened.count() == 0
    with pytest.raises(SubmissionError, match="unsupported database 'mysql'"):
        Store(url="mysql://user@host/db", root=tmp_path / "r")


def test_sqlite_connections_use_wal_and_a_busy_timeout(root):
    with Store(root=root) as opened, opened.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def _processes():
    """multiprocessing's forkserver: workers fork from a fresh interpreter that has imported the store once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["_store_worker", "mammo_utils.submissions.store"])
    return context


def test_concurrent_submissions_from_eight_processes(backend, root, tmp_path):
    url = backend or f"sqlite:///{root / 'submissions.db'}"
    go, ready = tmp_path / "go", tmp_path / "ready"
    ready.mkdir()
    context = _processes()
    workers = [
        context.Process(
            target=_store_worker.concurrent,
            args=(url, str(root), i, str(go), str(ready), str(tmp_path / f"out-{i}.jsonl")),
        )
        for i in range(8)
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 120
    while len(list(ready.iterdir())) < 8 and time.monotonic() < deadline and all(w.is_alive() for w in workers):
        time.sleep(0.01)
    go.touch()  # all eight start together: the schema is created by whoever wins, then 200 submissions
    for worker in workers:
        worker.join(timeout=180)
    assert [worker.exitcode for worker in workers] == [0] * 8
    results = [json.loads(line) for i in range(8) for line in (tmp_path / f"out-{i}.jsonl").read_text().splitlines()]
    assert len(results) == 8 * 25
    expected = {seed for i in range(8) for seed in worker_seeds(i)}
    sha_of = {}
    for result in results:
        assert sha_of.setdefault(result["seed"], result["sha256"]) == result["sha256"]
    assert len(sha_of) == len(expected) == 8 * 20 + len(SHARED_SEEDS)
    assert sum(not result["duplicate"] for result in results) == len(expected)  # each image inserted once
    with Store(url=url, root=root) as opened:
        table = opened.submissions()
        assert len(table) == len(expected) and table["sha256"].is_unique
        assert set(table["sha256"]) == set(sha_of.values())
        assert dict(zip(table["sha256"], table["id"], strict=True)) == {r["sha256"]: r["id"] for r in results}
        assert opened.orphans() == [] and len(stored_files(root)) == len(expected)


CRASH_CASES = [
    ("sqlite", "writing-file"),
    ("sqlite", "before-insert"),
    ("sqlite", "insert-uncommitted"),
    ("postgresql", "insert-uncommitted"),
]


@pytest.mark.parametrize(("database", "stage"), CRASH_CASES)
def test_writer_killed_mid_submission_leaves_no_row_and_an_orphan(database, stage, root, tmp_path, request):
    url = None
    if database == "postgresql":
        url = request.getfixturevalue("postgres_url")
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS submissions CASCADE"))
        engine.dispose()
    url = url or f"sqlite:///{root / 'submissions.db'}"
    with Store(url=url, root=root) as opened:
        kept = opened.submit(synthetic_png(20), consent=True)
    marker = tmp_path / "paused"
    writer = _processes().Process(target=_store_worker.crash, args=(url, str(root), stage, str(marker)))
    writer.start()
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert writer.is_alive(), f"the writer exited with {writer.exitcode} before the crash point"
        assert time.monotonic() < deadline, "the writer never reached the crash point"
        time.sleep(0.01)
    writer.kill()  # SIGKILL: no cleanup, no rollback by the client
    writer.join(timeout=30)
    assert writer.exitcode == -signal.SIGKILL
    with Store(url=url, root=root) as reopened:
        assert reopened.count() == 1 and [s.id for s in reopened.records()] == [kept.id]
        orphans = reopened.orphans()
        assert len(orphans) == 1
        assert orphans[0].name.startswith(".tmp-") == (stage == "writing-file")
        assert reopened.remove_orphans() == 1 and reopened.orphans() == []
        assert stored_files(root) == [kept.image_path]
        again = reopened.submit(synthetic_png(424242), consent=True)  # the same image the killed writer had
        assert not again.duplicate and reopened.count() == 2 and reopened.orphans() == []
