"""The ceiling of the malignancy task on the held-out synthetic test split: label noise and a finding oracle.

Two upper references, measured before choosing a model (issue #13):

* the label-noise bound: the ROC AUC of the generator's true pathology (a 0/1 score) against the recorded, noisy
  labels (:func:`mammo_utils.evaluation.ceiling.label_noise_bound`), the best any model can score against them;
* an oracle told where the finding is: a small CNN on ``--crop`` × ``--crop`` crops centred on each image's known
  finding, at full generator resolution, trained on the noisy labels (:func:`~mammo_utils.evaluation.ceiling.
  train_oracle`, early stopping on validation AUC), scored against the noisy and the true test labels.

All AUCs with patient-level bootstrap 95 % CIs. Data: the 2,000-image synthetic set (``--fast``: the 200-image
one), split by patient with seed 42, as in the notebooks. Prints a table and writes
``models/benchmarks/ceiling.json`` (``ceiling_fast.json`` with ``--fast``).

Usage::

    .venv/bin/python benchmarks/ceiling.py [--seed 42] [--epochs 40] [--n-boot 1000] [--crop 96] [--fast]

About 3–5 minutes on 2 CPU cores (reading the crops ~15 s, training the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

SPLIT_SEED = 42  # the notebooks' split


def _load(fast: bool):
    from mammo_utils.datasets.splits import split_by_patient
    from mammo_utils.datasets.synthetic import generate_synthetic

    return split_by_patient(generate_synthetic(fast=fast), seed=SPLIT_SEED)


def _measure(args: argparse.Namespace) -> dict:
    """Read the crops, train the oracle, score the test split; every quantity with its CI, and the stage timings."""
    import numpy as np

    from mammo_utils.evaluation import ceiling

    timings: dict[str, float] = {}
    start = time.perf_counter()
    manifest = _load(args.fast)
    parts = {name: (manifest["split"] == name).to_numpy() for name in ("train", "val", "test")}
    crops = ceiling.finding_crops(manifest, size=args.crop, workers=args.workers)
    timings["load_and_crop_s"] = time.perf_counter() - start
    noisy = (manifest["pathology"] == "malignant").to_numpy().astype(int)
    start = time.perf_counter()
    fit = ceiling.train_oracle(
        crops[parts["train"]],
        noisy[parts["train"]],
        crops[parts["val"]],
        noisy[parts["val"]],
        seed=args.seed,
        epochs=args.epochs,
    )
    timings["train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    test = manifest[parts["test"]]
    scores = ceiling.oracle_scores(fit.model, crops[parts["test"]])
    cis = {
        "label_noise_bound": ceiling.label_noise_bound(test, n_boot=args.n_boot, seed=args.seed),
        "oracle_vs_noisy": ceiling.auc_ci(test, scores, "pathology", n_boot=args.n_boot, seed=args.seed),
        "oracle_vs_true": ceiling.auc_ci(test, scores, "true_pathology", n_boot=args.n_boot, seed=args.seed),
    }
    timings["score_and_bootstrap_s"] = time.perf_counter() - start
    return {
        "config": {
            "data": "synthetic (fast)" if args.fast else "synthetic",
            "split": "test",
            "split_seed": SPLIT_SEED,
            **{f"n_{name}": int(mask.sum()) for name, mask in parts.items()},
            "n_test_patients": int(test["patient_id"].nunique()),
            "test_label_flips": int((test["pathology"] != test["true_pathology"]).sum()),
            "crop": args.crop,
            "epochs": args.epochs,
            "seed": args.seed,
            "n_boot": args.n_boot,
            "cpu_count": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
        },
        "results": {key: {**ci._asdict(), "n_test": len(test)} for key, ci in cis.items()},
        "oracle": {
            "params": int(fit.model.count_params()),
            "best_epoch": fit.best_epoch,
            "epochs_run": len(fit.history),
            "val_auc_noisy": fit.val_auc,
            "history": fit.history.to_dict(orient="records"),
        },
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "oracle_test_scores": [float(s) for s in np.round(scores, 6)],
    }


LABELS = {
    "label_noise_bound": "label-noise bound (true labels as score, vs noisy)",
    "oracle_vs_noisy": "finding oracle vs noisy labels",
    "oracle_vs_true": "finding oracle vs true labels",
}


def _report(saved: dict) -> None:
    config, oracle = saved["config"], saved["oracle"]
    print(
        f"\nCeiling of malignancy ROC AUC: {config['data']} data, held-out test split ({config['n_test']} images, "
        f"{config['n_test_patients']} patients, {config['test_label_flips']} recorded labels flipped); 95 % CIs by "
        f"patient-level bootstrap ({config['n_boot']} replicates). Oracle: {config['crop']}×{config['crop']} crops "
        f"centred on the known finding, {oracle['params']:,}-parameter CNN trained on the noisy labels of "
        f"{config['n_train']} images, best of {oracle['epochs_run']} epochs: {oracle['best_epoch']} "
        f"(validation AUC {oracle['val_auc_noisy']:.3f} on {config['n_val']} images).\n"
    )
    width = max(len(label) for label in LABELS.values())
    print(f"{'quantity':<{width}}  {'AUC':>6}  {'95 % CI':<15}  {'n test images':>13}")
    for key, label in LABELS.items():
        r = saved["results"][key]
        print(f"{label:<{width}}  {r['value']:>6.3f}  [{r['low']:.3f}, {r['high']:.3f}]  {r['n_test']:>13}")
    times = saved["timings"]
    print(
        f"\ntimings: crops {times['load_and_crop_s']:.0f} s, training {times['train_s']:.0f} s, scoring and "
        f"bootstrap {times['score_and_bootstrap_s']:.0f} s, total {times['total_s']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42, help="seed of the oracle's training and of the bootstrap")
    parser.add_argument(
        "--epochs", type=int, default=None, help="most training epochs, early stopping on val AUC (default 40; fast 3)"
    )
    parser.add_argument("--n-boot", type=int, default=None, help="patient-level bootstrap replicates (default 1000)")
    parser.add_argument("--crop", type=int, default=96, help="side of the crop around the finding, in pixels")
    parser.add_argument("--workers", type=int, default=None, help="crop-reading processes (default: all CPUs)")
    parser.add_argument(
        "--fast", action="store_true", help="a quick run: the 200-image fast synthetic set, 3 epochs, 200 replicates"
    )
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = 3 if args.fast else 40
    if args.n_boot is None:
        args.n_boot = 200 if args.fast else 1000
    from mammo_utils import paths

    start = time.perf_counter()
    saved = _measure(args)
    saved["timings"]["total_s"] = round(time.perf_counter() - start, 1)
    _report(saved)
    name = "ceiling_fast.json" if args.fast else "ceiling.json"  # a quick run never overwrites the measurement
    path = paths.ensure_dir(paths.models_dir() / "benchmarks") / name
    path.write_text(json.dumps(saved, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
