"""Single-image latency of :class:`mammo_utils.inference.predictor.Predictor` on the 8 real CBIS-DDSM DICOMs.

The DICOMs are 4.7k×2.6k, 16-bit RLE.

For every image and pass, measured side by side in one process: the *bare decode* (``pydicom.dcmread`` plus the
pixel array through the pylibjpeg RLE plugin, nothing else), then ``Predictor.predict`` with its own stage timings
(decode = read_mammogram: bare decode plus VOI/rescale to float [0, 1]; standardize; model + Grad-CAM, one forward
and two backward passes), and the bare forward pass of the model alone (a ``tf.function``, for comparison). After one
warm-up pass, it prints the median and 90th percentile of each stage over all images and passes, the peak RSS, and
the ratios end-to-end / bare decode (goal ≤ 3×, aim 2×) against the goal of ≤ 0.5 s median end to end.

It uses the latest training run, or trains the default model in fast mode when there is none.

Usage::

    .venv/bin/python benchmarks/predict_latency.py [--run-dir DIR] [--passes 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

GOAL_SECONDS = 0.5
GOAL_RATIO, AIM_RATIO = 3.0, 2.0


def _bare_decode(path) -> float:
    """Seconds to read the file and decode its pixel array (pydicom + pylibjpeg), no conversion."""
    import pydicom
    from pydicom.pixels import pixel_array

    start = time.perf_counter()
    ds = pydicom.dcmread(path)
    pixels = pixel_array(ds, decoding_plugin="pylibjpeg")
    elapsed = time.perf_counter() - start
    assert pixels.ndim == 2
    return elapsed


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", default=None, help="training run to load (default: the latest)")
    parser.add_argument("--passes", type=int, default=5, help="timed passes over the 8 DICOMs after one warm-up")
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    from mammo_utils.datasets.sample import sample
    from mammo_utils.inference.predictor import Predictor
    from mammo_utils.training.train import ensure_run

    run_dir, trained = ensure_run(args.run_dir)
    predictor = Predictor.from_run(run_dir)
    forward = tf.function(lambda x: predictor.model(x, training=False))
    files = [str(p) for p in sample()["image_path"]]
    times: dict[str, list[float]] = {
        k: [] for k in ("bare_decode", "decode", "standardize", "model_forward", "model_gradcam", "total")
    }
    shapes: set[tuple[int, int]] = set()
    for n_pass in range(args.passes + 1):
        for path in files:
            bare = _bare_decode(path)
            prediction = predictor.predict(path)
            batch = tf.constant(prediction.image[None, ..., None])
            start = time.perf_counter()
            _ = {k: v.numpy() for k, v in forward(batch).items()}
            forward_s = time.perf_counter() - start
            if n_pass == 0:
                continue  # warm-up: file cache, graph tracing
            shapes.add(prediction.original_shape)
            times["bare_decode"].append(bare)
            times["model_forward"].append(forward_s)
            for stage in ("decode", "standardize", "model_gradcam", "total"):
                times[stage].append(prediction.timings[stage])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"Predictor latency on the 8 CBIS-DDSM sample DICOMs ({args.passes} passes after 1 warm-up, "
        f"{len(times['total'])} predictions)"
    )
    print(
        f"model: {predictor.version}{' (just trained in fast mode: no run existed)' if trained else ''}; "
        f"input {predictor.image_size}; originals from {min(shapes)} to {max(shapes)} pixels"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"TensorFlow {tf.__version__}"
    )
    print()
    print(f"{'stage':<34}{'median ms':>11}{'p90 ms':>9}")
    labels = {
        "bare_decode": "bare decode (pydicom + pylibjpeg)",
        "decode": "decode (read_mammogram)",
        "standardize": "standardize",
        "model_forward": "  model forward alone (reference)",
        "model_gradcam": "model + Grad-CAM (both heads)",
        "total": "end to end (Predictor.predict)",
    }
    for key, label in labels.items():
        print(f"{label:<34}{1000 * statistics.median(times[key]):>11.1f}{1000 * _quantile(times[key], 0.9):>9.1f}")
    print(f"{'peak RSS':<34}{peak_mb:>11.0f} MB")
    print()
    total, bare = statistics.median(times["total"]), statistics.median(times["bare_decode"])
    ratio = total / bare
    per_image = np.array(times["total"]) / np.array(times["bare_decode"])
    print(
        f"median end to end: {1000 * total:.0f} ms (goal ≤ {1000 * GOAL_SECONDS:.0f} ms: "
        f"{'met' if total <= GOAL_SECONDS else 'NOT met'})"
    )
    print(
        f"ratio end to end / bare decode: {ratio:.2f}× of the medians, {np.median(per_image):.2f}× median per "
        f"image (goal ≤ {GOAL_RATIO:.0f}×: {'met' if ratio <= GOAL_RATIO else 'NOT met'}; aim {AIM_RATIO:.0f}×: "
        f"{'met' if ratio <= AIM_RATIO else 'not met'})"
    )
    print(
        f"ratio decode (read_mammogram) / bare decode: "
        f"{statistics.median(times['decode']) / bare:.2f}×; model + Grad-CAM / forward alone: "
        f"{statistics.median(times['model_gradcam']) / statistics.median(times['model_forward']):.2f}×"
    )


if __name__ == "__main__":
    main()
