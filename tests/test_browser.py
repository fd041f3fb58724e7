"""The explorer notebook in a real browser: JupyterLab, headless Chromium, a learner's clicks.

Starts JupyterLab on 127.0.0.1 with a free port and a token, opens notebooks/06_explore.ipynb in
Debian's Chromium (driven by Playwright, never a downloaded browser), runs every cell, moves the
strength slider with the keyboard, clicks another image in the gallery, and checks that the status
text and the pictures change. The screenshot lands in build/explorer.png, the server's log in
build/explorer-jupyterlab.log.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/06_explore.ipynb"
SCREENSHOT = ROOT / "build" / "explorer.png"
SERVER_LOG = ROOT / "build" / "explorer-jupyterlab.log"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; ./run test installs it when missing
CHROMIUM_ARGS = [
    "--no-sandbox",  # Chromium refuses to run as root with its sandbox
    "--headless",
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
    # no connections to Google's services: this machine may be offline
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab's settings, in a private settings folder: never save the notebook (autosave would
# write the executed copy into the repository), keep every cell in the page (no windowing), and
# let no news pop-up cover the notebook.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}
SERVER_START_SECONDS = 60
RUN_ALL_SECONDS = 120
CHANGE_SECONDS = 30  # for the page and the explorer to show a change
WAIT_MS = CHANGE_SECONDS * 1000

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def lab_environment(home: Path) -> dict[str, str]:
    """The course's fast, interactive mode, and Jupyter state in `home`, not the user's."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # let the kernel draw figures inline, as for a learner
    for name, folder in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
        ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
        ("COURSE_ARTIFACTS", "artifacts"),
    ]:
        env[name] = str(home / folder)
        (home / folder).mkdir()
    for name, settings in LAB_SETTINGS.items():
        path = home / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env.update(COURSE_WIDGETS="interactive", COURSE_FAST="1")
    return env


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving the repository; yields its base URL and token."""
    port, token = free_port(), os.urandom(16).hex()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
        f"--FileCheckpoints.checkpoint_dir={tmp_path / 'checkpoints'}",  # not in notebooks/
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = tmp_path / "jupyterlab.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env=lab_environment(tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one below
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(server, f"{base}/api/status?token={token}", log_path)
        yield base, token
    finally:
        stop(server)
        SERVER_LOG.parent.mkdir(exist_ok=True)
        shutil.copy(log_path, SERVER_LOG)  # the server's and the kernel's messages, for CI


def wait_until_ready(server: subprocess.Popen, status_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            get_json(status_url)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)  # not listening yet
    raise AssertionError(
        f"JupyterLab did not answer within {SERVER_START_SECONDS} s "
        f"(exit code {server.poll()}); its log:\n{log_path.read_text()[-3000:]}"
    )


def stop(server: subprocess.Popen) -> None:
    """SIGTERM lets the server shut its kernels down; SIGKILL the group if it hangs.

    Kernels run in sessions of their own, but they exit when their parent server dies.
    """
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def wait_for_kernel(base: str, token: str) -> None:
    """Wait until the server runs an idle kernel for the notebook.

    The page's execution indicator says "idle" before it has any kernel too (with "No Kernel"
    beside it), and running cells then opens a "Select Kernel" dialog; the server knows better.
    """
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        sessions = get_json(f"{base}/api/sessions?token={token}")
        states = [s["kernel"]["execution_state"] for s in sessions if s["path"] == NOTEBOOK]
        if states == ["idle"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"no idle kernel for {NOTEBOOK} within {SERVER_START_SECONDS} s")


# Run All has finished when every code cell shows "[7]:" ("[*]:" while queued or running), or
# when an error stopped it: then no cell is still running and a traceback is on the page.
RUN_ALL_FINISHED = """stderr => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
        .map(prompt => prompt.textContent);
    const errors = [...document.querySelectorAll(stderr)]
        .filter(output => output.textContent.includes('Traceback'));
    return prompts.length > 0 && (prompts.every(prompt => /^\\[\\d+\\]:$/.test(prompt))
        || (errors.length > 0 && !prompts.includes('[*]:')));
}"""
# error outputs and stderr text, such as warnings, share this element
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


def run_all_cells(page: Page, base: str, token: str) -> None:
    """Run → Run All Cells once the kernel is ready; fail on the first traceback."""
    wait_for_kernel(base, token)
    indicator = page.locator(".jp-Notebook-ExecutionIndicator")
    expect(indicator).to_have_attribute("data-status", "idle", timeout=WAIT_MS)
    page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(RUN_ALL_FINISHED, arg=STDERR, timeout=RUN_ALL_SECONDS * 1000)
    tracebacks = page.locator(STDERR).filter(has_text="Traceback")
    assert tracebacks.count() == 0, f"a cell failed:\n{tracebacks.first.inner_text()}"
    expect(indicator).to_have_attribute("data-status", "idle", timeout=WAIT_MS)


def shown(image: Locator) -> bytes:
    """The pixels of an <img> as the page shows them, once its current src is decoded."""
    image.evaluate("image => image.decode()")
    return image.screenshot()


def wait_for_new_picture(image: Locator, before: bytes) -> bytes:
    """The image's pixels once they differ from `before` (a new src may be on its way)."""
    deadline = time.monotonic() + CHANGE_SECONDS
    after = shown(image)
    while after == before and time.monotonic() < deadline:
        time.sleep(0.2)
        after = shown(image)
    assert after != before, f"the image did not change within {CHANGE_SECONDS} s"
    return after


def kernel_states(base: str, token: str) -> list[str]:
    return [kernel["execution_state"] for kernel in get_json(f"{base}/api/kernels?token={token}")]


@pytest.fixture
def page(lab):
    """A Chromium tab on the explorer notebook; its last view is saved to build/explorer.png."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `./run test` installs Debian's chromium"
    base, token = lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", timeout=60_000)
        try:
            yield page
        finally:  # after a failure too: the screenshot shows where the test stopped
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=SCREENSHOT)
            browser.close()


def test_explorer_responds_to_slider_and_gallery(lab, page):
    notebook = (ROOT / NOTEBOOK).read_bytes()
    run_all_cells(page, *lab)
    assert kernel_states(*lab) == ["idle"]

    status, corrected = page.locator(".explorer-status"), page.locator(".explorer-corrected")
    delta = page.locator(".explorer-delta")
    explorer = page.locator(".jp-OutputArea-output", has=status)
    explorer.evaluate("output => output.scrollIntoView()")
    expect(status).to_contain_text(re.compile(r"\d+ quer"), timeout=WAIT_MS)  # 1 query, 2 queries
    text, picture = status.inner_text(), shown(corrected)

    # a learner moves the strength slider with the keyboard, away from the end it may sit at ...
    handle = page.locator(".explorer-strength .noUi-handle")
    at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    handle.focus()
    for _ in range(3):
        page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
    expect(status).not_to_have_text(text, timeout=WAIT_MS)
    text, picture = status.inner_text(), wait_for_new_picture(corrected, picture)

    # ... then clicks another image in the gallery
    index = page.locator(".explorer-index .widget-readout")
    first_index = index.inner_text()
    change = shown(delta)
    page.locator(".explorer-gallery-button").nth(1).click()
    expect(index).not_to_have_text(first_index, timeout=WAIT_MS)
    expect(status).not_to_have_text(text, timeout=WAIT_MS)
    wait_for_new_picture(corrected, picture)
    wait_for_new_picture(delta, change)

    explorer.evaluate("output => output.scrollIntoView()")  # for the screenshot
    assert (ROOT / NOTEBOOK).read_bytes() == notebook, "the browser must not save the notebook"
