"""The submission database: images users submit, their labels, consent, the model's prediction and a review status.

Storage
    Rows live in one table (:mod:`mammo_utils.submissions.schema`) of an SQLite file,
    ``<data>/submissions/submissions.db`` by default, or of any PostgreSQL database given as a URL
    (``Store(url="postgresql+psycopg://user:pw@host/db")`` or the environment variable ``MAMMO_DATABASE_URL``).
    Image files live under the store root (``<data>/submissions`` by default), content-addressed by the SHA-256
    of the stored, de-identified bytes: ``files/<first two hex digits>/<sha256>.<dcm|png|tiff>``. With
    PostgreSQL, every process must see the same root (one machine or a shared file system).
Safety of a submission
    :meth:`Store.submit` validates everything first (consent, labels, a readable mammogram), de-identifies the
    image (:mod:`mammo_utils.submissions.deidentify`), writes the file to a temporary name in its final folder,
    fsyncs it and renames it into place, and only then inserts the row in one transaction. A crash before the
    commit leaves at most a file without a row: an *orphan*, never counted as a submission, listed by
    :meth:`Store.orphans` and deleted by :meth:`Store.remove_orphans`. The name of the uploaded file never
    reaches the file system; only a sanitized display name (basename, no control characters, at most 255
    characters) is kept in the row.
Duplicates
    The SHA-256 column is unique. Submitting an image that is already stored (the same bytes, or the same DICOM
    after de-identification) adds no row and returns the stored submission with ``duplicate=True``. The labels,
    submitter and prediction of the first submission are kept; those of the repeat are ignored, because a label
    change must go through review rather than be overwritten by whoever uploads last. When two processes insert
    the same image at once, the loser's unique-constraint violation is caught and the winner's row is returned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from mammo_utils import labels, paths
from mammo_utils.imaging.io import read_mammogram
from mammo_utils.imaging.mammogram import Mammogram, MammogramReadError
from mammo_utils.submissions.deidentify import DeidentifiedImage, deidentify
from mammo_utils.submissions.fields import (
    StoreError,
    Submission,
    SubmissionError,
    SubmissionNotFound,
    check_id,
    check_status,
    clean_text,
    prediction_json,
    sanitize_name,
    utc,
)
from mammo_utils.submissions.files import content_path, scan_orphans, write_atomic
from mammo_utils.submissions.schema import create_schema, make_engine, sqlite_url, submissions

if TYPE_CHECKING:  # pandas is imported only when a table is asked for
    import pandas as pd

__all__ = ["DATABASE_URL_ENV", "Store", "default_root"]

DATABASE_URL_ENV = "MAMMO_DATABASE_URL"


def default_root() -> Path:
    """``<data>/submissions``: the default store root (database file and image files)."""
    return paths.data_dir() / "submissions"


def _reason(exc: DBAPIError) -> str:
    """The first line of the database's own error message."""
    return (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]


def _checked_labels(consent: bool, density: int | str | None, pathology: str | None) -> dict[str, Any]:
    """``consent`` must be True; the density and pathology in their stored form (or a :class:`SubmissionError`)."""
    if consent is not True:
        raise SubmissionError(
            "consent is required to store a submission: confirm that the image may be stored and used to "
            "train the model (consent=True)"
        )
    try:
        return {"density": labels.density_from_any(density), "pathology": labels.pathology_from_any(pathology)}
    except ValueError as exc:
        raise SubmissionError(f"{exc}. Leave the label empty if it is not known.") from None


def _submission_row(
    name: str | None, mammogram: Mammogram, clean: DeidentifiedImage, checked: dict[str, Any]
) -> dict[str, Any]:
    """The database row of a new submission (``checked``: density, pathology, submitter, prediction, model)."""
    return {
        "original_name": name,
        "media_type": clean.media_type,
        "laterality": mammogram.laterality or clean.laterality,
        "view": mammogram.view or clean.view,
        "density": checked["density"],
        "pathology": checked["pathology"],
        "submitter": checked["submitter"],
        "consent": True,
        "prediction": checked["prediction"],
        "model_version": checked["model_version"],
        "status": "pending",
        "phi_flags": json.dumps(list(clean.phi_flags)),
    }


class Store:
    """The submission database (see the module notes).

    Parameters
    ----------
    url : str, optional
        SQLAlchemy database URL. Default: ``$MAMMO_DATABASE_URL`` if set, else the SQLite file
        ``<root>/submissions.db``.
    root : Path, optional
        Folder holding ``files/`` (and the default SQLite file). Default: :func:`default_root`.
    """

    def __init__(self, url: str | None = None, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser().resolve() if root is not None else default_root()
        self.files_dir = self.root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        url = url or os.environ.get(DATABASE_URL_ENV) or sqlite_url(self.root / "submissions.db")
        try:
            self.engine = make_engine(url)
        except ValueError as exc:
            raise SubmissionError(str(exc)) from None
        try:
            create_schema(self.engine)
        except DBAPIError as exc:
            self.engine.dispose()
            raise StoreError(
                f"cannot open the submission database {self.url} ({_reason(exc)}). Check that the server runs and "
                "the URL, user and password are right."
            ) from exc

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Store(url={self.url!r}, root={str(self.root)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # --- writing ---------------------------------------------------------------------------------------------
    def submit(
        self,
        source: bytes | bytearray | memoryview | str | os.PathLike[str],
        *,
        filename: str | None = None,
        density: int | str | None = None,
        pathology: str | None = None,
        consent: bool,
        submitter: str | None = None,
        prediction: dict[str, Any] | Any | None = None,
        model_version: str | None = None,
    ) -> Submission:
        """Validate, de-identify and store one image with its labels; return the stored submission.

        Parameters
        ----------
        source : bytes or path
            The image (DICOM, PNG, JPEG, TIFF ...).
        filename : str, optional
            The uploaded file's name, kept only as a sanitized display name (default: the path's name).
        density : int or str, optional
            Submitter's BI-RADS density, 1-4 or a-d.
        pathology : str, optional
            Submitter's label: benign or malignant (also BENIGN_WITHOUT_CALLBACK, MALIGNANT, B/M).
        consent : bool
            Must be True: the person submitting agrees that the image is stored and used to train the model.
        submitter : str, optional
            Who submitted (free text, at most 255 characters).
        prediction : dict or Prediction, optional
            The model's prediction shown at submission time (stored as JSON).
        model_version : str, optional
            The model that made `prediction`.

        Returns
        -------
        Submission
            With ``duplicate=True`` and the first submission's labels if the image was already stored.

        Raises
        ------
        SubmissionError
            No consent, a bad label, an unreadable or non-mammogram image, a missing file.
        StoreError
            The database refused the row for another reason; the file is then left as an orphan.
        """
        checked = _checked_labels(consent, density, pathology)
        checked["submitter"] = clean_text(submitter, "submitter")
        checked["model_version"] = clean_text(model_version, "model_version")
        checked["prediction"] = prediction_json(prediction)
        data, name = self._load(source, filename)
        try:
            mammogram = read_mammogram(data, filename=name)
            clean = deidentify(data, name or "upload")
        except MammogramReadError as exc:
            raise SubmissionError(str(exc)) from exc
        return self._store(clean, _submission_row(name, mammogram, clean, checked))

    @staticmethod
    def _load(source: Any, filename: str | None) -> tuple[bytes, str | None]:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data, name = bytes(source), sanitize_name(filename)
        elif isinstance(source, (str, os.PathLike)):
            path = Path(os.fsdecode(source))
            if not path.is_file():
                raise SubmissionError(f"{path}: no such file. Check the path (relative to {Path.cwd()}).")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise SubmissionError(
                    f"{path}: cannot read the file ({exc.strerror}). Check its permissions."
                ) from None
            name = sanitize_name(filename if filename is not None else path.name)
        else:
            raise TypeError(f"submit expects image bytes or a file path, not {type(source).__name__}")
        if not data:
            raise SubmissionError(f"{name or 'upload'}: the file is empty (0 bytes). Re-export or re-upload it.")
        return data, name

    def _store(self, clean: DeidentifiedImage, values: dict[str, Any]) -> Submission:
        digest = hashlib.sha256(clean.data).hexdigest()
        relative = content_path(digest, clean.extension)
        final = self.root / relative
        existing = self._find(digest)
        write_atomic(final, clean.data)
        if existing is not None:
            return dataclasses.replace(existing, duplicate=True)
        values = {**values, "sha256": digest, "stored_path": relative.as_posix(), "submitted_at": datetime.now(UTC)}
        try:
            new_id = self._insert(values)
        except DBAPIError as exc:
            existing = self._find(digest) if isinstance(exc, IntegrityError) else None
            if existing is not None:  # another process stored the same image first
                return dataclasses.replace(existing, duplicate=True)
            raise StoreError(
                f"the submission could not be recorded in {self.url} ({_reason(exc)}); nothing was added. The image "
                "file was left as an orphan: Store.remove_orphans() deletes it."
            ) from exc
        if not final.exists():  # a concurrent remove_orphans() took it between the write and the commit
            write_atomic(final, clean.data)
        return self.get(new_id)

    def _insert(self, values: dict[str, Any]) -> int:
        """Insert one row in its own transaction and return its id."""
        with self.engine.begin() as connection:
            return int(connection.execute(insert(submissions).returning(submissions.c.id), values).scalar_one())

    def review(self, submission_id: int, status: str, reviewer: str | None = None) -> Submission:
        """Set a submission's review status ("pending", "accepted" or "rejected") and return it.

        Raises
        ------
        SubmissionError
            Unknown status. :class:`SubmissionNotFound` if no submission has this id.
        """
        status = check_status(status)
        reviewer = clean_text(reviewer, "reviewer")
        when = None if status == "pending" else datetime.now(UTC)
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(submissions)
                .where(submissions.c.id == check_id(submission_id))
                .values(status=status, reviewed_at=when, reviewer=reviewer if when else None)
            ).rowcount
        if not changed:
            raise SubmissionNotFound(f"no submission with id {submission_id}; see Store.submissions() for the ids")
        return self.get(submission_id)

    # --- reading ---------------------------------------------------------------------------------------------
    def _row_to_submission(self, row: Any) -> Submission:
        return Submission(
            id=int(row.id),
            sha256=row.sha256,
            image_path=self.root / row.stored_path,
            original_name=row.original_name,
            media_type=row.media_type,
            laterality=row.laterality,
            view=row.view,
            density=None if row.density is None else int(row.density),
            pathology=row.pathology,
            submitter=row.submitter,
            consent=bool(row.consent),
            submitted_at=utc(row.submitted_at),
            prediction=None if row.prediction is None else json.loads(row.prediction),
            model_version=row.model_version,
            status=row.status,
            reviewed_at=utc(row.reviewed_at),
            reviewer=row.reviewer,
            phi_flags=tuple(json.loads(row.phi_flags or "[]")),
        )

    def _find(self, digest: str) -> Submission | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(submissions).where(submissions.c.sha256 == digest)).first()
        return None if row is None else self._row_to_submission(row)

    def get(self, submission_id: int) -> Submission:
        """The submission with this id.

        Raises
        ------
        SubmissionNotFound
            No submission has this id.
        """
        with self.engine.connect() as connection:
            row = connection.execute(select(submissions).where(submissions.c.id == check_id(submission_id))).first()
        if row is None:
            raise SubmissionNotFound(f"no submission with id {submission_id}; see Store.submissions() for the ids")
        return self._row_to_submission(row)

    def count(self, status: str | None = None) -> int:
        """Number of submissions (rows; orphan files are never counted), optionally with one review status."""
        query = select(func.count()).select_from(submissions)
        if status is not None:
            query = query.where(submissions.c.status == check_status(status))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def records(self, status: str | None = None) -> list[Submission]:
        """All submissions (optionally with one review status), oldest first."""
        query = select(submissions).order_by(submissions.c.id)
        if status is not None:
            query = query.where(submissions.c.status == check_status(status))
        with self.engine.connect() as connection:
            return [self._row_to_submission(row) for row in connection.execute(query)]

    def submissions(self, status: str | None = None) -> pd.DataFrame:
        """The submissions as a DataFrame, one row per submission, oldest first.

        Columns are the :class:`Submission` fields except ``duplicate``; ``density`` is nullable Int64,
        ``image_path`` the absolute file path as text.
        """
        import pandas as pd

        fields = [field.name for field in dataclasses.fields(Submission) if field.name != "duplicate"]
        records = []
        for item in self.records(status):
            record = {name: getattr(item, name) for name in fields}
            record["image_path"] = str(item.image_path)
            record["phi_flags"] = list(item.phi_flags)
            records.append(record)
        frame = pd.DataFrame(records, columns=fields)
        frame["density"] = pd.array(frame["density"].tolist(), dtype="Int64")
        for column in ("submitted_at", "reviewed_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def manifest(self, status: str | None = "accepted") -> pd.DataFrame:
        """The submissions with this review status (None: all) as a manifest (``mammo_utils.datasets.schema``).

        ``source`` is "submission", ``patient_id`` is ``submission-<id>`` (no patient identifier is kept, so each
        submission counts as its own patient), labels are the submitter's, ``split`` is NA. Extra columns:
        ``submission_id`` and ``sha256``.
        """
        from mammo_utils.datasets.schema import make_manifest, validate_manifest

        rows = [
            {
                "image_path": str(item.image_path),
                "patient_id": f"submission-{item.id}",
                "laterality": item.laterality,
                "view": item.view,
                "density": item.density,
                "pathology": item.pathology,
                "source": "submission",
                "split": None,
                "submission_id": item.id,
                "sha256": item.sha256,
            }
            for item in self.records(status)
        ]
        if not rows:
            import pandas as pd

            empty = make_manifest(
                pd.DataFrame({"image_path": pd.Series([], dtype=object)}), extra=("submission_id", "sha256")
            )
            return validate_manifest(empty)
        return validate_manifest(make_manifest(rows, extra=("submission_id", "sha256")))

    # --- housekeeping ----------------------------------------------------------------------------------------
    def orphans(self) -> list[Path]:
        """Files under ``files/`` that no row refers to (left by a crash or a failed insert), sorted.

        Also lists temporary ``.tmp-*`` files of interrupted writes.
        """
        with self.engine.connect() as connection:
            known = set(connection.execute(select(submissions.c.sha256)).scalars())
        return scan_orphans(self.files_dir, known)

    def remove_orphans(self, older_than: float = 0.0) -> int:
        """Delete the files :meth:`orphans` lists (those last modified more than `older_than` seconds ago).

        Pass e.g. ``older_than=3600`` while other processes may be submitting, so a file written a moment before
        its row is committed is left alone. Returns the number of files deleted.
        """
        now = datetime.now(UTC).timestamp()
        removed = 0
        for path in self.orphans():
            with suppress(FileNotFoundError):
                if now - path.stat().st_mtime >= older_than:
                    path.unlink()
                    removed += 1
        return removed
