"""The ablation: the lesion model vs the whole-image model (and, opt-in, the seed model), same split and budget.

Data: the 2,000-image synthetic set (``--fast``: the 200-image one), split by patient with seed 42 (the notebooks'
split). Every model gets the same budget: at most ``--epochs`` epochs with early stopping (``--patience``),
``--batch-size``, ``--learning-rate`` (the notebooks' defaults), the same training images (``--max-train``, default
all). The seed model (201.9 M parameters) trains at about 1 image/s on this CPU, so it is opt-in (``--models
lesion,whole_image,seed``) and its training images are capped by ``--seed-max-train`` (whole patients).

Each (model, training seed) run trains and is evaluated in its own subprocess (so peak memory is its own), with
``point_latest=False`` (never the registry's current model), and reports: parameters, train time, malignancy ROC
AUC against the recorded (noisy) labels and against the generator's true labels, the sensitivity at specificity
≥ 0.9 (operating point chosen on the test scores' own ROC curve) against both, density accuracy and quadratic κ —
all with patient-level bootstrap 95 % CIs — and the pointing game on the test images recorded as malignant (lesion
map for the lesion model, Grad-CAM of the malignancy head for the others) with its Wilson interval. Then per model
the mean ± sd over training seeds, and the paired patient-bootstrap difference lesion − other on the first seed's
runs (the same test images). Prints one table and writes ``models/benchmarks/ablation.json``.

Usage::

    .venv/bin/python benchmarks/ablation.py [--models lesion,whole_image[,seed]] [--seeds 42,43,44] [--epochs 16]
        [--patience 5] [--batch-size 16] [--learning-rate 2e-3]
        [--max-train N] [--seed-max-train 800] [--n-boot 1000] [--out DIR] [--fast]

Expect about two hours for the two default models and three seeds on 2 CPU cores (early stopping decides); the
seed model adds ~15 minutes per epoch at 800 images. ``--fast``: the fast synthetic set, one seed, one epoch, 200
bootstrap replicates (minutes), written to ``models/benchmarks/ablation_fast.json`` so that a smoke run never
replaces the real results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("lesion", "whole_image", "seed")
REFERENCE = "lesion"
SPLIT_SEED = 42  # the notebooks' split


def _load(fast: bool):
    from mammo_utils.datasets.catalog import load as load_dataset
    from mammo_utils.datasets.splits import split_by_patient

    return split_by_patient(load_dataset("synthetic", fast=fast), seed=SPLIT_SEED)


def _read_manifest(path: str | Path):
    import pandas as pd

    from mammo_utils.datasets.schema import make_manifest

    frame = pd.read_csv(path)
    return make_manifest(frame, extra=[c for c in frame.columns if c not in make_manifest([]).columns])


def _cap_train(manifest, max_train: int | None, seed: int):
    """Keep whole training patients (in a seeded order) up to ``max_train`` images; val and test untouched."""
    train = manifest[manifest["split"] == "train"]
    if max_train is None or len(train) <= max_train:
        return manifest
    patients = train["patient_id"].drop_duplicates().sample(frac=1.0, random_state=seed)
    sizes = train.groupby("patient_id").size()
    keep, count = [], 0
    for patient in patients:
        if count + int(sizes[patient]) > max_train:
            break
        keep.append(patient)
        count += int(sizes[patient])
    return manifest[(manifest["split"] != "train") | manifest["patient_id"].isin(keep)]


def _entry(ci) -> dict:
    return {"value": ci.value, "ci_low": ci.low, "ci_high": ci.high}


def _pointing(evaluation) -> dict:
    """The pointing game on the test images recorded as malignant: the model's lesion map, else its Grad-CAM."""
    from mammo_utils.evaluation.localization import pointing_game
    from mammo_utils.evaluation.run import finding_maps

    malignant = evaluation.test[evaluation.test["malignant"] == 1]
    if malignant.empty:
        return {"map": None, "n": 0, "hits": 0, "hit_rate": None, "ci_low": None, "ci_high": None}
    maps = finding_maps(evaluation.run.model, evaluation.cached, malignant)
    summary = pointing_game(maps.cams, maps.records).summary
    keep = ("n", "hits", "hit_rate", "ci_low", "ci_high", "n_flat", "n_skipped", "median_mass_share")
    return {"map": maps.kind, **{key: summary[key] for key in keep}}


def _metrics(evaluation, manifest, n_boot: int, seed: int) -> dict:
    from mammo_utils.evaluation.compare import malignancy_cis, with_true_pathology
    from mammo_utils.evaluation.tables import metric_entry

    noisy = malignancy_cis(evaluation.test, n_boot=n_boot, seed=seed)
    true = malignancy_cis(with_true_pathology(evaluation.test, manifest), n_boot=n_boot, seed=seed)
    out = {
        key: {k: metric_entry(evaluation.metrics, key)[k] for k in ("value", "ci_low", "ci_high")}
        for key in ("malignancy.roc_auc", "density.accuracy", "density.kappa_quadratic")
    }
    out["malignancy.roc_auc_true"] = _entry(true["roc_auc"])
    out["malignancy.sensitivity_at_specificity"] = _entry(noisy["sensitivity_at_specificity"])
    out["malignancy.sensitivity_at_specificity_true"] = _entry(true["sensitivity_at_specificity"])
    return out


def _worker(args: argparse.Namespace) -> None:
    """Train and evaluate one (model, seed); print one RESULT json line."""
    import resource

    from mammo_utils.datasets.catalog import load_findings
    from mammo_utils.evaluation.run import evaluate_run
    from mammo_utils.models.networks import count_params
    from mammo_utils.training.config import TrainConfig
    from mammo_utils.training.train import train

    manifest = _read_manifest(args.manifest)
    config = TrainConfig(
        model=args.worker,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        run_dir=Path(args.out) / f"{args.worker}_seed{args.seed}",
        patience=args.patience,
        verbose=0,
        point_latest=False,  # a benchmark run must not become LATEST or the registry's current model
    )
    start = time.perf_counter()
    run = train(manifest, config, findings=load_findings("synthetic", manifest))
    train_s = time.perf_counter() - start
    evaluation = evaluate_run(run.run_dir, n_boot=args.n_boot, seed=args.seed)
    result = {
        "model": args.worker,
        "seed": args.seed,
        "params": int(count_params(run.model)["total"]),
        "image_size": int(run.params["image_size"]),
        "train_s": round(train_s, 1),
        "epochs_trained": int(run.params["epochs_trained"]),
        "n_train": int((manifest["split"] == "train").sum()),
        "n_test": len(evaluation.test),
        "run_dir": str(run.run_dir),
        "metrics": _metrics(evaluation, manifest, args.n_boot, args.seed),
        "pointing_game": _pointing(evaluation),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }
    print("RESULT " + json.dumps(result), flush=True)


def _run_worker(model: str, seed: int, manifest: Path, out: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", model, "--manifest", str(manifest), "--out", str(out)]
    command += ["--seeds", str(seed), "--epochs", str(args.epochs), "--patience", str(args.patience)]
    command += ["--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate)]
    command += ["--n-boot", str(args.n_boot)]
    print(f"training and evaluating {model}, seed {seed} ...", file=sys.stderr, flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{model} (seed {seed}) worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    print(lines[-1], flush=True)
    return json.loads(lines[-1][len("RESULT ") :])


def _paired(runs: dict, manifest, models: list[str], n_boot: int, seed: int) -> dict:
    """Paired patient-bootstrap differences lesion − other on the first seed's runs (noisy and true labels)."""
    import pandas as pd

    from mammo_utils.evaluation.compare import paired_comparison, with_true_pathology

    def table(model: str) -> pd.DataFrame:
        return pd.read_csv(Path(runs[model][0]["run_dir"]) / "predictions_test.csv")

    out = {}
    for other in models:
        if other == REFERENCE:
            continue
        pair, rows = (other, REFERENCE), {}
        for suffix, convert in (("", lambda f: f), ("_true", lambda f: with_true_pathology(f, manifest))):
            frame = paired_comparison(*(convert(table(m)) for m in pair), names=pair, n_boot=n_boot, seed=seed)
            for metric, row in frame.iterrows():
                if suffix and metric.startswith("density."):
                    continue  # density labels are the recorded ones either way
                rows[f"{metric}{suffix}"] = {
                    k: float(row[k]) for k in ("difference", "ci_low", "ci_high", "p_b_better")
                }
        out[f"{REFERENCE} - {other}"] = rows
    return out


def _over_seeds(runs: dict) -> dict:
    from mammo_utils.evaluation.compare import SEED_SUMMARY_METRICS, seed_summary

    return {
        model: {
            key: {**seed_summary([r["metrics"][key]["value"] for r in results]), "seeds": [r["seed"] for r in results]}
            for key in SEED_SUMMARY_METRICS
        }
        for model, results in runs.items()
    }


def _config(args: argparse.Namespace, models: list[str], seeds: list[int], manifest) -> dict:
    test = manifest[manifest["split"] == "test"]
    return {
        "data": "synthetic (fast)" if args.fast else "synthetic",
        "split": "test",
        "split_seed": SPLIT_SEED,
        "models": models,
        "seeds": seeds,
        "epochs": args.epochs,
        "patience": args.patience,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_train": args.max_train,
        "seed_max_train": args.seed_max_train,
        "n_train": int((manifest["split"] == "train").sum()),
        "n_val": int((manifest["split"] == "val").sum()),
        "n_test": len(test),
        "n_test_patients": int(test["patient_id"].nunique()),
        "n_test_malignant": int((test["pathology"] == "malignant").sum()),
        "test_label_flips": int((test["pathology"] != test["true_pathology"]).sum()),
        "n_boot": args.n_boot,
        "threshold": "sensitivity at specificity >= 0.9: operating point chosen on the test scores' ROC curve",
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }


def _report(saved: dict, path: Path, out: Path) -> None:
    import pandas as pd

    from mammo_utils.evaluation.compare import ablation_header, ablation_table

    print("\n" + ablation_header(saved) + "\n")
    with pd.option_context("display.width", 250, "display.max_colwidth", 60, "display.max_columns", 10):
        print(ablation_table(saved, reference=REFERENCE).to_string())
    print(f"\nrun directories: {out}\nresults: {path}")


def _parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str], list[int]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="lesion,whole_image", help="comma-separated: lesion, whole_image, seed")
    parser.add_argument("--seeds", default="42,43,44", help="comma-separated training seeds")
    parser.add_argument("--epochs", type=int, default=16, help="most epochs (as in 02_train)")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience, in epochs")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step (as in 02_train)")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="Adam's initial learning rate (02_train's)")
    parser.add_argument("--max-train", type=int, default=None, help="training images (whole patients); default all")
    parser.add_argument("--seed-max-train", type=int, default=800, help="training images of the seed model")
    parser.add_argument("--n-boot", type=int, default=1000, help="patient-level bootstrap replicates")
    parser.add_argument("--out", default=None, help="folder for the run directories (default: a new temp folder)")
    parser.add_argument("--fast", action="store_true", help="fast synthetic set, first seed only, 1 epoch, 200 boots")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not names or set(names) - set(MODELS) or (REFERENCE not in names and not args.worker):
        parser.error(f"--models must name {REFERENCE} and some of {', '.join(MODELS[1:])}, got {args.models!r}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not seeds:
        parser.error("--seeds must name at least one seed")
    if args.fast:
        seeds, args.epochs, args.n_boot = seeds[:1], 1, min(args.n_boot, 200)
    return args, [m for m in MODELS if m in names], seeds


def main(argv: list[str] | None = None) -> None:
    """Run every (model, seed) in a subprocess, then compare, print and save."""
    args, models, seeds = _parse(argv)
    if args.worker:
        args.seed = seeds[0]
        _worker(args)
        return
    from mammo_utils import paths
    from mammo_utils.evaluation.tables import to_jsonable

    started = time.perf_counter()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ablation-"))
    out.mkdir(parents=True, exist_ok=True)
    manifest = _cap_train(_load(args.fast), args.max_train, SPLIT_SEED)
    manifest_path = out / "manifest.csv"
    manifest.to_csv(manifest_path, index=False)
    if "seed" in models:
        print(
            f"the seed model trains at ~1 image/s on this CPU: capped at {args.seed_max_train} training images",
            file=sys.stderr,
        )
        _cap_train(manifest, args.seed_max_train, SPLIT_SEED).to_csv(out / "manifest_seed.csv", index=False)
    runs: dict[str, list[dict]] = {}
    for model in models:
        source = out / "manifest_seed.csv" if model == "seed" else manifest_path
        runs[model] = [_run_worker(model, seed, source, out, args) for seed in seeds]
    saved = to_jsonable(
        {
            "config": _config(args, models, seeds, manifest),
            "runs": runs,
            "over_seeds": _over_seeds(runs),
            "paired": _paired(runs, manifest, models, args.n_boot, seeds[0]),
            "total_s": round(time.perf_counter() - started, 1),
        }
    )  # NaN (an sd of one seed, an undefined metric) -> null: strict JSON
    name = "ablation_fast.json" if args.fast else "ablation.json"  # a smoke run never replaces the real results
    path = paths.ensure_dir(paths.models_dir() / "benchmarks") / name
    path.write_text(json.dumps(saved, indent=2, allow_nan=False))
    _report(saved, path, out)


if __name__ == "__main__":
    main()
