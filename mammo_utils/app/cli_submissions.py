"""Command-line subcommands of version 2: the submission database and model versions.

``submit FILE --consent [--density N] [--pathology benign|malignant] [--submitter NAME] [--no-predict]``
    Store one image (de-identified) with optional labels; prints the submission id. Exit 1 if refused.
``submissions [--status pending|accepted|rejected] [--csv OUT]``
    List the submissions.
``review ID... --accept | --reject [--reviewer NAME]``
    Accept or reject submissions; only accepted ones are used to update the model.
``update [--epochs N] [--fast] [--tolerance T] [--seed S]``
    Fine-tune the current model on the accepted submissions, run the evaluation gate, register the version.
``models``
    List the model versions (the current one marked with *).
``rollback VERSION``
    Make an earlier version current again.

Every command takes ``--database URL`` (default: SQLite in ``data/submissions``, or ``$MAMMO_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_commands"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _database(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="SQLAlchemy database URL (default: $MAMMO_DATABASE_URL, else SQLite in data/submissions)",
    )


def add_commands(commands: Any) -> None:
    """Add ``submit``, ``submissions``, ``review``, ``update``, ``models`` and ``rollback`` to a subparsers object."""
    submit = commands.add_parser(
        "submit",
        help="store an image (de-identified) with optional labels",
        description="Store one mammogram in the submission database. DICOM files are "
        "de-identified and image metadata is stripped before storing.",
    )
    submit.add_argument("file", metavar="FILE", help="DICOM, PNG, JPEG or TIFF mammogram")
    submit.add_argument("--density", metavar="N", default=None, help="BI-RADS density 1-4 or a-d (optional)")
    submit.add_argument("--pathology", choices=("benign", "malignant"), default=None, help="optional")
    submit.add_argument(
        "--consent",
        action="store_true",
        help="required: you may share the image and consent to its storage and use for updating the model",
    )
    submit.add_argument("--submitter", metavar="NAME", default=None, help="who submits (optional)")
    submit.add_argument("--no-predict", action="store_true", help="do not store the current model's prediction")
    _database(submit)
    submit.set_defaults(handler=_submit, command_parser=submit)

    listing = commands.add_parser("submissions", help="list the submissions")
    listing.add_argument("--status", choices=("pending", "accepted", "rejected"), default=None)
    listing.add_argument("--csv", metavar="OUT", default=None, help="write a CSV instead of a table ('-' = stdout)")
    _database(listing)
    listing.set_defaults(handler=_submissions, command_parser=listing)

    review = commands.add_parser("review", help="accept or reject submissions")
    review.add_argument("ids", nargs="+", type=int, metavar="ID")
    decision = review.add_mutually_exclusive_group(required=True)
    decision.add_argument("--accept", action="store_const", const="accepted", dest="status")
    decision.add_argument("--reject", action="store_const", const="rejected", dest="status")
    review.add_argument("--reviewer", metavar="NAME", default=None)
    _database(review)
    review.set_defaults(handler=_review, command_parser=review)

    update = commands.add_parser(
        "update",
        help="fine-tune on accepted submissions, gate, register the version",
        description="Fine-tune the current model on the accepted submissions plus a replay "
        "sample of its training data (transfer learning: heads first). The "
        "candidate becomes current only if the evaluation gate passes.",
    )
    update.add_argument("--epochs", type=int, default=None, help="epochs of the heads phase")
    update.add_argument("--tolerance", type=float, default=None, help="gate tolerance on kappa and AUC")
    update.add_argument("--fast", action="store_true", help="the small CI-sized run")
    update.add_argument("--seed", type=int, default=42)
    _database(update)
    update.set_defaults(handler=_update, command_parser=update)

    models = commands.add_parser("models", help="list the model versions")
    models.set_defaults(handler=_models, command_parser=models)

    rollback = commands.add_parser("rollback", help="make an earlier model version current again")
    rollback.add_argument("version", metavar="VERSION", help="e.g. v1 (see `models`)")
    rollback.set_defaults(handler=_rollback, command_parser=rollback)


def _store(args: argparse.Namespace) -> Any:
    from mammo_utils.submissions.store import Store

    return Store(url=args.database)


def _submit(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from mammo_utils.submissions.fields import StoreError, SubmissionError

    if not args.consent:
        parser.error("--consent is required: nothing is stored without the submitter's consent")
    if not os.path.isfile(args.file):
        parser.error(f"no such file: {args.file}")
    prediction, version = None, None
    if not args.no_predict:
        prediction, version = _predict_for_record(args.file)
    store = _store(args)
    try:
        stored = store.submit(
            args.file,
            filename=os.path.basename(args.file),
            density=args.density,
            pathology=args.pathology,
            consent=True,
            submitter=args.submitter,
            prediction=prediction,
            model_version=version,
        )
    except (SubmissionError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        store.close()
    state = "already stored as" if stored.duplicate else "stored as"
    print(f"{args.file}: {state} submission {stored.id} (status {stored.status}, sha256 {stored.sha256[:12]})")
    return EXIT_OK


def _predict_for_record(path: str) -> tuple[dict | None, str | None]:
    """The current model's prediction to store with the submission; (None, None) when there is no model."""
    from mammo_utils.imaging.mammogram import MammogramReadError
    from mammo_utils.inference.predictor import Predictor

    try:
        predictor = Predictor.from_path(None, warmup=False)
    except (FileNotFoundError, ValueError) as exc:
        print(f"note: no prediction stored ({exc})", file=sys.stderr)
        return None, None
    try:
        record = predictor.predict(path).to_record()
    except MammogramReadError:
        return None, None  # the store refuses the file with the reader's message
    return record, record.get("model_version")


def _submissions(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    store = _store(args)
    try:
        frame = store.submissions(status=args.status)
    finally:
        store.close()
    if args.csv:
        frame.to_csv(sys.stdout if args.csv == "-" else args.csv, index=False)
        return EXIT_OK
    columns = [
        c
        for c in ("id", "submitted_at", "status", "density", "pathology", "submitter", "original_name")
        if c in frame.columns
    ]
    print(frame[columns].to_string(index=False) if len(frame) else "no submissions")
    return EXIT_OK


def _review(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    store = _store(args)
    code = EXIT_OK
    try:
        for submission_id in args.ids:
            try:
                row = store.review(submission_id, args.status, reviewer=args.reviewer)
            except (KeyError, ValueError) as exc:
                print(f"error: submission {submission_id}: {exc}", file=sys.stderr)
                code = EXIT_REFUSED
                continue
            print(f"submission {row.id}: {row.status}")
    finally:
        store.close()
    return code


def _update(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from mammo_utils.update.config import FinetuneConfig
    from mammo_utils.update.finetune import update

    store = _store(args)
    try:
        submissions = store.manifest(status="accepted")
    finally:
        store.close()
    if submissions.empty:
        print("error: no accepted submissions to learn from; review some first (`review ID --accept`)", file=sys.stderr)
        return EXIT_REFUSED
    options: dict[str, Any] = {"fast": args.fast, "seed": args.seed}
    if args.epochs is not None:
        options["epochs_heads"] = args.epochs
    if args.tolerance is not None:
        options["tolerance"] = args.tolerance
    try:
        gate = {"tolerance": options.pop("tolerance")} if "tolerance" in options else {}
        result = update(submissions, FinetuneConfig(**options), **gate)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    from mammo_utils.update.gate import gate_summary

    print(gate_summary(result.gate))
    state = "promoted: it is now the current model" if result.promoted else "kept as a rejected candidate"
    print(f"{result.version.version} (parent {result.base.version}, run {result.version.run_dir}) {state}")
    return EXIT_OK


def _models(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from mammo_utils.models.registry import Registry

    frame = Registry().versions()
    print(frame.to_string(index=False) if len(frame) else "no model versions registered yet (run `update`)")
    return EXIT_OK


def _rollback(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from mammo_utils.models.registry import Registry

    try:
        version = Registry().rollback(args.version)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"current model: {version.version} ({version.run_dir})")
    return EXIT_OK
