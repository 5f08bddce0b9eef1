r"""Command line: ``mammo <command> ...``.

``predict FILE_OR_DIR... [--model PATH_OR_RUN_DIR] [--json | --csv OUT]``
    Predict BI-RADS density and malignancy for files and folders (searched recursively for DICOM, PNG, JPEG,
    TIFF and PGM). Prints one line per file (or JSON, or writes a CSV); a progress bar on stderr for many
    files. Exit code 0 when every file was predicted, 1 when some could not be read (one line per such file on
    stderr; the others are still predicted and printed), 2 for usage errors (bad arguments, no input files,
    no model).

``compare-runs DIR_A DIR_B``
    Did two ``make run``\ s give the same numbers? Compares the latest runs' history and metrics and the
    notebooks' printed output (see :mod:`mammo_utils.evaluation.reproducibility`). Exit code 0 when the numbers agree,
    1 when something differs, 2 when a folder holds no run.

Version 2 adds ``submit``, ``submissions``, ``review``, ``update``, ``models`` and ``rollback``
(see :mod:`mammo_utils.app.cli_submissions`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mammo_utils.app.cli_submissions import add_commands

__all__ = ["EXIT_OK", "EXIT_UNREADABLE", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_USAGE = 2
DISCLAIMER = "teaching and research tool, not a medical device; the default model is trained on synthetic data"


def build_parser() -> argparse.ArgumentParser:
    """The ``mammo_utils`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="mammo", description=f"Mammography helpers ({DISCLAIMER}).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    predict = commands.add_parser(
        "predict",
        help="predict BI-RADS density and malignancy for mammogram files or folders",
        description="Predict BI-RADS density (a-d) and the probability of malignancy, with the call at the "
        f"run's threshold. Folders are searched recursively. Note: {DISCLAIMER}.",
    )
    predict.add_argument(
        "inputs",
        nargs="+",
        metavar="FILE_OR_DIR",
        help="image files (DICOM, PNG, JPEG, TIFF, PGM) or folders holding them",
    )
    predict.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help="a run directory, its model.keras or any .keras model (default: the latest run)",
    )
    output = predict.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON list (one object per predicted file)")
    output.add_argument("--csv", metavar="OUT", help="write a CSV (one row per file, errors included); '-' = stdout")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(handler=_predict, command_parser=predict)
    compare = commands.add_parser(
        "compare-runs",
        help="check that two `make run`s (two clones or MAMMO_HOMEs) gave the same numbers",
        description="Compare the latest training runs (history.csv, metrics.json) and the executed notebooks' "
        "printed output of two project folders, ignoring dates, durations, paths and run names.",
    )
    compare.add_argument("folders", nargs=2, metavar="DIR", help="project folders after `make run`")
    compare.add_argument("--lines", type=int, default=5, help="differing lines shown per notebook (default 5)")
    compare.set_defaults(handler=_compare_runs, command_parser=compare)
    add_commands(commands)
    return parser


def _line(record: dict) -> str:
    probs = " ".join(f"{k}={record[f'p_density_{k}']:.2f}" for k in "abcd")
    calibration = "calibrated" if record["calibrated"] else "uncalibrated"
    regions = record.get("regions") or []
    where = ""
    if regions:
        top, left, bottom, right = (round(v) for v in regions[0]["box_original"])
        where = f"\ttop region rows {top}-{bottom}, columns {left}-{right} (p {regions[0]['probability']:.2f})"
    return (
        f"{record['source']}\tdensity {record['density_letter']} ({record['density_name']}) [{probs}]\t"
        f"malignancy {record['malignancy_prob']:.3f} -> {record['call']} (threshold {record['threshold']:.3f}, "
        f"{calibration}){where}"
    )


def _predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from mammo_utils.inference.batch import collect_inputs
    from mammo_utils.inference.predictor import Predictor

    files, missing = collect_inputs(args.inputs)
    if not files:
        reasons = "; ".join(message for _, message in missing.errors) or "the folders hold no supported images"
        parser.error(f"no input files ({reasons})")  # exits with 2
    try:
        predictor = Predictor.from_path(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    batch = predictor.predict_many(files, progress=not args.no_progress, keep_arrays=False)
    batch.errors[:0] = missing.errors
    for _, message in batch.errors:
        print(f"error: {' '.join(message.split())}", file=sys.stderr)  # one line per file
    records = [p.to_record() for p in batch.predictions]
    if args.json:
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.csv:
        frame = batch.to_frame()
        if args.csv == "-":
            frame.to_csv(sys.stdout, index=False)
        else:
            Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(args.csv, index=False)
            print(f"wrote {len(frame)} row(s) to {args.csv}", file=sys.stderr)
    else:
        for record in records:
            print(_line(record))
    return EXIT_OK if batch.ok else EXIT_UNREADABLE


def _compare_runs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from mammo_utils.evaluation.reproducibility import compare_projects

    try:
        report = compare_projects(*args.folders)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report.summary(max_lines=args.lines))
    return EXIT_OK if report.identical else EXIT_UNREADABLE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse usage errors exit with 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args, args.command_parser))
