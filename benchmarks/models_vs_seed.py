"""The seed model vs the compact default model, side by side in one run, on the same synthetic split and epochs.

For each model (each in its own subprocess, so peak memory is its own): parameters, training images/s,
inference images/s, peak RSS, and — on the held-out synthetic *test* split — density accuracy, quadratic-weighted
κ and malignancy ROC AUC with patient-level bootstrap 95 % CIs. Prints a table and the default/seed ratios.

The seed model trains at about 1 image/s on 2 CPU cores, so by default both models see the same capped training
set (``--max-train`` images, patient-level sample of the train split) for ``--epochs`` epochs.

Usage::

    .venv/bin/python benchmarks/models_vs_seed.py [--epochs 5] [--max-train 800] [--batch-size 16] [--seed 42]

With the defaults the seed model takes about 70 minutes, the default model about 5.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("default", "seed")


def _split_manifest(max_train: int, seed: int, out: Path) -> Path:
    from mammo_utils.datasets.catalog import load as load_dataset
    from mammo_utils.datasets.splits import split_by_patient

    manifest = split_by_patient(load_dataset("synthetic", seed=seed), seed=seed)
    train = manifest[manifest["split"] == "train"]
    patients = train["patient_id"].drop_duplicates().sample(frac=1.0, random_state=seed)
    keep, count = [], 0
    for patient in patients:  # whole patients until the cap
        n = int((train["patient_id"] == patient).sum())
        if count + n > max_train:
            break
        keep.append(patient)
        count += n
    capped = manifest[(manifest["split"] != "train") | manifest["patient_id"].isin(keep)]
    capped.to_csv(out, index=False)
    return out


def _worker(args: argparse.Namespace) -> None:
    """Train and evaluate one model; print one JSON line."""
    import keras
    import pandas as pd

    from mammo_utils.datasets.schema import make_manifest
    from mammo_utils.evaluation.run import evaluate_run
    from mammo_utils.evaluation.tables import metric_entry
    from mammo_utils.models.networks import count_params
    from mammo_utils.training.config import TrainConfig
    from mammo_utils.training.train import train

    class FitTimer(keras.callbacks.Callback):
        """Wall time of the training batches only (no validation, no checkpointing)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds, self.images = 0.0, 0

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds += time.perf_counter() - self._start
            self.images += args.batch_size

    frame = pd.read_csv(args.manifest)
    manifest = make_manifest(frame, extra=[c for c in frame.columns if c not in make_manifest([]).columns])
    timer = FitTimer()
    config = TrainConfig(
        model=args.worker,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        run_dir=Path(args.out) / args.worker,
        patience=args.epochs,
        verbose=0,
        point_latest=False,  # a benchmark run must not become LATEST or the registry's current model
    )
    run = train(manifest, config, callbacks=[timer])
    evaluation = evaluate_run(run.run_dir, n_boot=args.n_boot, seed=args.seed)
    images = evaluation.cached.images(evaluation.test)
    run.model.predict(images[: args.batch_size], batch_size=args.batch_size, verbose=0)  # warm-up
    start = time.perf_counter()
    run.model.predict(images, batch_size=32, verbose=0)
    inference = len(images) / (time.perf_counter() - start)
    result = {
        "model": args.worker,
        "params": count_params(run.model)["total"],
        "train_images_per_s": timer.images / timer.seconds,
        "inference_images_per_s": inference,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "n_train": int((manifest["split"] == "train").sum()),
        "n_test": len(evaluation.test),
        "run_dir": str(run.run_dir),
        "metrics": {
            key: metric_entry(evaluation.metrics, key)
            for key in ("density.accuracy", "density.kappa_quadratic", "malignancy.roc_auc")
        },
    }
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-train", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help="comma-separated subset of 'default,seed' (one model: its line only, no comparison)",
    )
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    models = [m for m in MODELS if m in args.models.split(",")]
    if not models or set(args.models.split(",")) - set(MODELS):
        parser.error(f"--models must name some of {', '.join(MODELS)}, got {args.models!r}")
    out = Path(tempfile.mkdtemp(prefix="models_vs_seed-"))
    manifest = _split_manifest(args.max_train, args.seed, out / "manifest.csv")
    results = {}
    for model in models:
        command = [
            sys.executable,
            __file__,
            "--worker",
            model,
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--seed",
            str(args.seed),
            "--n-boot",
            str(args.n_boot),
        ]
        print(f"training and evaluating the {model} model ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            sys.exit(f"{model} worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        results[model] = json.loads(lines[-1][len("RESULT ") :])
        print(lines[-1], flush=True)
    if len(results) < len(MODELS):
        return
    _report(results, args, out)


def _report(results: dict, args: argparse.Namespace, out: Path) -> None:
    """Print the table (costs as ratios, metrics as paired differences) and save it for 03_evaluate."""
    import pandas as pd

    from mammo_utils import paths
    from mammo_utils.evaluation.compare import benchmark_table, paired_comparison

    pair = ("seed", "default")  # difference = default - seed
    paired = paired_comparison(
        *(pd.read_csv(Path(results[m]["run_dir"]) / "predictions_test.csv") for m in pair),
        names=pair,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    config = {
        "data": "synthetic",
        "split": "test",
        "epochs": args.epochs,
        "max_train": args.max_train,
        "n_train": results["default"]["n_train"],
        "n_test": results["default"]["n_test"],
        "batch_size": args.batch_size,
        "seed": args.seed,
        "n_boot": args.n_boot,
    }
    comparison = {metric: {k: float(v) for k, v in row.items()} for metric, row in paired.iterrows()}
    saved = {"config": config, "results": results, "paired_difference": comparison}
    print(
        f"\nSynthetic data, same patient-level split: {config['n_train']} training images, {args.epochs} epochs, "
        f"batch {args.batch_size}; metrics on the held-out synthetic test split ({config['n_test']} images) with "
        f"95 % CIs by patient-level bootstrap ({args.n_boot} replicates). Last column: default / seed for the "
        "costs; for the metrics the paired difference default - seed (both models scored on the same resampled "
        "patients) with its 95 % CI.\n"
    )
    with pd.option_context("display.width", 160, "display.max_colwidth", 40):
        print(benchmark_table(saved).to_string())
    path = paths.ensure_dir(paths.models_dir() / "benchmarks") / "models_vs_seed.json"
    path.write_text(json.dumps(saved, indent=2))
    print(
        "\nshare of paired replicates where the default model is better: "
        + ", ".join(f"{metric} {row['p_b_better']:.2f}" for metric, row in paired.iterrows())
    )
    print(f"run directories: {out}\nresults: {path}")


if __name__ == "__main__":
    main()
