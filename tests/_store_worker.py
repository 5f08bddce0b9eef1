"""Writer processes for tests/submissions/test_store.py (concurrency and crash tests); not a test module.

The tests run these functions in separate processes started by multiprocessing's "forkserver" context: a fresh
interpreter (not a fork of pytest) imports this module and :mod:`mammo_utils.submissions.store` once, and every worker
is forked from it, so eight writers start in well under a second instead of each paying the imports.

``concurrent``
    Waits for the go file, opens the store (racing the other workers to create the schema) and submits 25
    synthetic images: 20 of its own and the 5 that every worker submits. Writes one JSON line per submission.
``crash``
    Submits one synthetic image but stops at a stage and waits to be killed: "writing-file" (temporary file
    written, before fsync/rename), "before-insert" (file in place, no transaction yet) or "insert-uncommitted"
    (row inserted, transaction not committed). Creates the marker file when it got there.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

OWN_PER_WORKER = 20
SHARED_SEEDS = tuple(range(10_000, 10_005))


def synthetic_png(seed: int) -> bytes:
    """A small synthetic grey PNG, different for every seed."""
    pixels = (np.random.default_rng(seed).random((72, 64)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def worker_seeds(worker: int) -> list[int]:
    """The 25 seeds one worker submits: 20 of its own, then the 5 shared ones."""
    return [worker * 1000 + k for k in range(OWN_PER_WORKER)] + list(SHARED_SEEDS)


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def concurrent(url: str, root: str, worker: int, go_file: str, ready_dir: str, out_file: str) -> None:
    """Submit this worker's 25 images once the go file exists; write the results as JSON lines."""
    from mammo_utils.submissions.store import Store

    images = [(seed, synthetic_png(seed)) for seed in worker_seeds(worker)]
    (Path(ready_dir) / str(worker)).touch()
    _wait_for(Path(go_file))
    store = Store(url=url, root=root)
    with open(out_file, "w") as out:
        for seed, data in images:
            item = store.submit(
                data, filename=f"synthetic-{seed}.png", consent=True, submitter=f"worker-{worker}", density=1 + seed % 4
            )
            out.write(
                json.dumps({"seed": seed, "id": item.id, "sha256": item.sha256, "duplicate": item.duplicate}) + "\n"
            )
    store.close()


def crash(url: str, root: str, stage: str, marker: str) -> None:
    """Submit one image, pause at `stage` (creating `marker`) and wait to be killed."""
    from sqlalchemy import insert

    import mammo_utils.submissions.store as store_module

    def pause() -> None:
        Path(marker).touch()
        time.sleep(300)  # the test kills this process with SIGKILL

    if stage == "writing-file":
        import mammo_utils.submissions.files as files_module

        real_fsync = files_module.os.fsync

        def fsync(fd: int) -> None:
            real_fsync(fd)
            pause()

        files_module.os.fsync = fsync
    elif stage == "before-insert":
        store_module.Store._insert = lambda self, values: pause()
    elif stage == "insert-uncommitted":

        def insert_then_pause(self, values):
            with self.engine.begin() as connection:
                connection.execute(insert(store_module.submissions), values)
                pause()

        store_module.Store._insert = insert_then_pause
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    store = store_module.Store(url=url, root=root)
    store.submit(synthetic_png(424242), filename="synthetic-crash.png", consent=True)
    raise SystemExit("the submission finished although the worker should have been killed")
