"""End to end: the 04_predict_widget panel served by Voilà, driven by real headless Chromium through Playwright.

Voilà is started with the flags of ``make app`` (``VOILA_FLAGS`` in the Makefile) on a free localhost port, with
``MAMMO_HOME`` holding a fast-trained default run. The browser uploads a real 12 MB CBIS-DDSM DICOM (larger than
Tornado's default 10 MiB websocket message limit, which would drop it silently), waits for the density
and malignancy result, saves a screenshot to ``$MAMMO_HOME/figures/04_webapp.png`` (and also to the path in
``MAMMO_WEBAPP_FIGURE`` when set, e.g. ``figures/04_webapp.png`` for the README), then uploads a corrupt file and
checks that an error message appears while the page keeps working.

Chromium is Debian's ``/usr/bin/chromium`` (installed by ``make system-deps``); without it the test fails, it does
not skip.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _trained import trained_run_dir

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_predict_widget.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT_S = 120  # Voilà up and answering
PAGE_TIMEOUT_MS = 150_000  # page rendered: the kernel imports TensorFlow, loads and warms up the model
RESULT_TIMEOUT_MS = 60_000  # one upload predicted


def _voila_flags() -> list[str]:
    """``VOILA_FLAGS`` from the Makefile (the flags of ``make app``), split like the shell would."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(r"^VOILA_FLAGS\s*:?=(.*)$", text, re.M)
    assert match, "the Makefile defines VOILA_FLAGS for `make app`"
    return shlex.split(match.group(1))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Terminate Voilà and its kernels (its own process group), killing them if they do not stop in time."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_make_app_flags():
    flags = _voila_flags()
    assert "--no-browser" in flags and "--Voila.ip=127.0.0.1" in flags
    assert any(f.startswith("--VoilaExecutor.timeout=") for f in flags)
    assert any(f.startswith("--MappingKernelManager.cull_idle_timeout=") for f in flags)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^app:.*\n\t.*voila notebooks/04_predict_widget\.ipynb .*\$\(VOILA_FLAGS\)", makefile, re.M)


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`make system-deps`, or "
            "`apt-get install chromium`); the web-app test needs a real browser"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``(url, log file)`` of a running Voilà serving the notebook."""
    run_dir = trained_run_dir()  # in the session's MAMMO_HOME, which the kernel inherits
    voila = Path(sys.executable).with_name("voila")
    assert voila.is_file(), f"voila is not installed next to {sys.executable}; install the project (make test)"
    port = _free_port()
    log_path = tmp_path_factory.mktemp("voila") / "voila.log"
    env = os.environ | {"MAMMO_HOME": str(run_dir.parents[2]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(voila), str(NOTEBOOK), f"--port={port}", *_voila_flags()],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"Voilà exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Voilà did not answer within {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, log_path
    finally:
        _stop(process)


def test_upload_predict_error_and_sample_in_chromium(
    chromium: Path, voila: tuple[str, Path], sample_dicom_paths: list[Path], tmp_path: Path
):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail(
            "the Python package playwright is missing: install the project with `make test` (pip install -e '.[dev]')"
        )
    voila_url, log_path = voila
    # 12 MB: above Tornado's default 10 MiB websocket message limit, so this also checks the app's larger limit
    dicom = next(p for p in sample_dicom_paths if p.name == "1-131.dcm")
    assert dicom.stat().st_size > 10 * 2**20
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(os.urandom(4096))
    screenshot = Path(os.environ["MAMMO_HOME"]) / "figures" / "04_webapp.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(RESULT_TIMEOUT_MS)
            page.goto(voila_url, timeout=PAGE_TIMEOUT_MS, wait_until="commit")
            upload = page.locator(".mammo-upload")
            upload.wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
            expect(page.locator(".mammo-notice")).to_contain_text("not a medical device")
            expect(page.locator(".mammo-notice")).to_contain_text("synthetic data")
            assert "ensure_run(" not in page.content(), "code cells are hidden (and their source stripped)"
            results = page.locator(".mammo-output .mammo-result")
            errors = page.locator(".mammo-output .mammo-error")

            with page.expect_file_chooser() as chooser:
                upload.click()
            chooser.value.set_files(str(dicom))
            first = results.filter(has_text=dicom.name)
            expect(first).to_have_count(1)
            expect(first).to_contain_text("BI-RADS density")
            expect(first).to_contain_text("Malignancy probability")
            assert re.search(r"BI-RADS density: [abcd] \(", first.inner_text())
            assert re.search(r"Malignancy probability: \d\.\d+ → (benign|malignant)", first.inner_text())
            page.locator(".mammo-panel").screenshot(path=str(screenshot))
            assert screenshot.stat().st_size > 20_000
            if os.environ.get("MAMMO_WEBAPP_FIGURE"):
                shutil.copyfile(screenshot, os.environ["MAMMO_WEBAPP_FIGURE"])

            with page.expect_file_chooser() as chooser:
                upload.click()
            chooser.value.set_files(str(bad))
            expect(errors).to_have_count(1)
            expect(errors).to_contain_text("bad.dcm")
            assert "Traceback" not in page.locator(".mammo-panel").inner_text()
            expect(first).to_be_visible()  # the earlier result stays

            page.locator(".mammo-sample").click()  # and the page still works
            expect(results.filter(has_text="CBIS-DDSM")).to_have_count(1)
            expect(results).to_have_count(2)

            submit = page.locator(".mammo-submit-button")  # version 2: submit the last predicted image
            submit.click()
            expect(page.locator(".mammo-submit-error")).to_contain_text("consent")
            page.locator(".mammo-consent input").check()
            submit.click()
            expect(page.locator(".mammo-submitted")).to_contain_text("stored as submission")
        except Exception:
            print("---- Voilà log (end) ----\n" + log_path.read_text(errors="replace")[-4000:])
            raise
        finally:
            browser.close()
