"""The explorer notebook in a real browser: JupyterLab, headless Chromium, a learner's clicks.

Starts JupyterLab on 127.0.0.1 with a free port and a token, opens notebooks/08_explore.ipynb in
Debian's Chromium (driven by Playwright, never a downloaded browser) and runs every cell once for
the module. Then, on the main explorer: no label is cut; max queries bounds every method as a
whole; the (true → pred) picker shows the pair of the image on display and jumps to a pair's first
image; the strength slider and the gallery change the status text and the pictures. Last, a
solution cell runs again in the live page and its explorer works. The screenshot of the main
explorer lands in build/explorer.png, the server's log in build/explorer-jupyterlab.log.

`COURSE_BROWSER_FULL=1` runs the notebook in full mode on the checkpoints in artifacts/ (those a
`./run course` left): the README's screenshot comes from such a run, so it shows the mistakes a
learner sees.
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
NOTEBOOK = "notebooks/08_explore.ipynb"
SCREENSHOT = ROOT / "build" / "explorer.png"
FULL = os.environ.get("COURSE_BROWSER_FULL") == "1"
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
RUN_ALL_SECONDS = 300  # a ceiling: it trains the fast-mode CNN and surrogate in a fresh folder
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
    """The course's fast (or, with COURSE_BROWSER_FULL=1, full) interactive mode, and Jupyter
    state in `home`, not the user's."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # let the kernel draw figures inline, as for a learner
    for name, folder in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
        ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
        *([] if FULL else [("COURSE_ARTIFACTS", "artifacts")]),
    ]:
        env[name] = str(home / folder)
        (home / folder).mkdir()
    for name, settings in LAB_SETTINGS.items():
        path = home / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env.update(COURSE_WIDGETS="interactive", COURSE_FAST="0" if FULL else "1")
    return env


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving the repository; yields its base URL and token."""
    tmp_path = tmp_path_factory.mktemp("lab")
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


def wait_until_idle(page: Page, base: str, token: str) -> None:
    """Wait until the kernel has been idle for a moment: every comm message the page sent (a
    slider moved, a button clicked) has been handled and its answer drawn."""
    deadline, quiet_since = time.monotonic() + CHANGE_SECONDS, None
    while time.monotonic() < deadline:
        if kernel_states(base, token) == ["idle"]:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.0:
                break
        else:
            quiet_since = None
        time.sleep(0.1)
    indicator = page.locator(".jp-Notebook-ExecutionIndicator")
    expect(indicator).to_have_attribute("data-status", "idle", timeout=WAIT_MS)


def notebook_cells() -> list[dict]:
    return json.loads((ROOT / NOTEBOOK).read_text())["cells"]


def cell_index(predicate) -> int:
    """The position of the first cell of the notebook file for which `predicate` holds."""
    return next(i for i, cell in enumerate(notebook_cells()) if predicate(cell))


def source(cell: dict) -> str:
    return "".join(cell["source"])


def solutions() -> list[int]:
    return [
        i for i, c in enumerate(notebook_cells()) if "solution" in c["metadata"].get("tags", [])
    ]


def cell_at(page: Page, index: int) -> Locator:
    """The page's cell at `index` (JupyterLab keeps every cell in the page: no windowing)."""
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def main_cell(page: Page) -> Locator:
    """The cell that shows the notebook's main explorer (the first call of widgets.explore)."""
    index = cell_index(lambda c: c["cell_type"] == "code" and "widgets.explore(" in source(c))
    return cell_at(page, index)


class Panel:
    """One explorer's controls and outputs inside a notebook cell, as a learner sees them."""

    def __init__(self, page: Page, cell: Locator, lab: tuple[str, str]) -> None:
        self.page, self.cell, self.lab = page, cell, lab
        self.status = cell.locator(".explorer-status")
        self.index = cell.locator(".explorer-index .widget-readout")
        self.pair = cell.locator(".explorer-pair select")
        self.method = cell.locator(".explorer-method select")
        self.budget = cell.locator(".explorer-budget .widget-readout")
        self.gallery = cell.locator(".explorer-gallery-button")
        self.corrected, self.delta = (
            cell.locator(".explorer-corrected"),
            cell.locator(".explorer-delta"),
        )

    def settle(self) -> str:
        """Wait for the kernel to answer every change, then return the status line."""
        wait_until_idle(self.page, *self.lab)
        expect(self.status).to_contain_text(re.compile(r"\d+ quer"), timeout=WAIT_MS)
        return self.status.inner_text()

    def queries(self) -> int:
        """The number of queries the status line reports (1 query, 2 queries, ...)."""
        return int(re.search(r"(\d+) quer", self.settle()).group(1))

    def pair_shown(self) -> str:
        """The pair picker's choice without its count: '9 → 0 (3)' gives '9 → 0'."""
        label = self.pair.evaluate("select => select.options[select.selectedIndex].text")
        return label.replace("\xa0", " ").rsplit(" (", 1)[0]  # ipywidgets writes no-break spaces

    def gallery_pairs(self) -> list[str]:
        """The (true → predicted) pair of each gallery button, by image index."""
        texts = self.gallery.all_inner_texts()  # '3: 8→9'
        return [re.fullmatch(r"\d+: (.+)→(.+)", t.strip()).expand(r"\1 → \2") for t in texts]

    def set_budget(self, max_queries: int) -> None:
        self.budget.fill(str(max_queries))  # the slider's readout is editable, as for a learner
        self.budget.press("Enter")
        expect(self.budget).to_have_text(str(max_queries))

    def choose_mode(self, mode: str) -> None:
        self.cell.locator(".widget-toggle-button", has_text=mode).click()
        wait_until_idle(self.page, *self.lab)

    def choose_method(self, label: str) -> None:
        self.method.select_option(label=label)
        wait_until_idle(self.page, *self.lab)

    def press_slider(self, name: str, key: str, times: int = 1) -> None:
        handle = self.cell.locator(f".explorer-{name} .noUi-handle")
        handle.focus()
        for _ in range(times):
            handle.press(key)
        wait_until_idle(self.page, *self.lab)


# Every label of a panel fits its box: a description, a button, a readout, a status line (their
# scrollWidth exceeds their clientWidth when CSS cuts them), and every option of a drop-down, the
# hidden ones too (measured in the select's own font against the room its padding leaves).
TRUNCATED_LABELS = """cell => {
    const cut = [];
    const texts = cell.querySelectorAll(
        '.widget-label, .widget-button, .widget-toggle-button, .widget-readout, .widget-html');
    for (const element of texts) {
        if (element.offsetParent !== null && element.scrollWidth > element.clientWidth + 1) {
            const text = element.textContent.trim();
            cut.push(`${text}: ${element.scrollWidth} > ${element.clientWidth}`);
        }
    }
    const context = document.createElement('canvas').getContext('2d');
    for (const select of cell.querySelectorAll('select')) {
        const style = getComputedStyle(select);
        context.font = style.font;
        const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
        const room = select.clientWidth - padding;
        for (const option of select.options) {
            const width = context.measureText(option.text).width;
            if (width > room) cut.push(`${option.text}: ${Math.ceil(width)} > ${room}`);
        }
    }
    return cut;
}"""


@pytest.fixture(scope="module")
def page(lab):
    """A Chromium tab on the explorer notebook after Run All Cells; the main explorer's last view
    is saved to build/explorer.png (after a failure too)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `./run test` installs Debian's chromium"
    base, token = lab
    notebook = (ROOT / NOTEBOOK).read_bytes()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", timeout=60_000)
        try:
            run_all_cells(page, base, token)
            yield page
        finally:
            SCREENSHOT.parent.mkdir(exist_ok=True)
            explorer = main_cell(page).locator(
                ".jp-OutputArea-output", has=page.locator(".explorer-status")
            )
            if explorer.count():
                explorer.evaluate("output => output.scrollIntoView()")
            page.screenshot(path=SCREENSHOT)
            browser.close()
    assert (ROOT / NOTEBOOK).read_bytes() == notebook, "the browser must not save the notebook"


@pytest.fixture
def panel(page, lab) -> Panel:
    """The notebook's main explorer, in white-box mode with DeepFool and a budget of 20."""
    main = Panel(page, main_cell(page), lab)
    main.status.evaluate("status => status.scrollIntoView()")
    main.settle()
    yield main
    main.choose_mode("white box")
    main.choose_method("DeepFool")
    main.set_budget(20)


def test_every_cell_ran_and_the_kernel_is_idle(page, lab):
    assert kernel_states(*lab) == ["idle"]
    assert page.locator(STDERR).filter(has_text="Traceback").count() == 0


def test_no_label_is_cut(panel):
    assert panel.cell.evaluate(TRUNCATED_LABELS) == []


def test_max_queries_bounds_every_method_as_a_whole(panel):
    panel.choose_method("DeepFool + 10 refinement steps")
    assert panel.queries() <= 20
    panel.set_budget(2)
    for _ in range(3):  # other strengths, then other images: never more than 2 queries
        assert panel.queries() <= 2, panel.status.inner_text()
        panel.press_slider("strength", "ArrowRight", times=5)
    for button in (1, 2, 3):
        panel.gallery.nth(button).click()
        assert panel.queries() <= 2, panel.status.inner_text()
    panel.choose_mode("black box")
    panel.choose_method("surrogate DeepFool, schedule + 3 shrink steps")
    assert panel.queries() <= 2, panel.status.inner_text()


def test_the_pair_picker_follows_the_image_and_jumps_to_a_pair(panel):
    pairs = panel.gallery_pairs()
    panel.gallery.nth(3).click()  # a gallery click ...
    expect(panel.index).to_have_text("3")
    panel.settle()
    assert panel.pair_shown() == pairs[3]
    panel.press_slider("index", "ArrowRight")  # ... and a slider move show the image's pair
    expect(panel.index).to_have_text("4")
    panel.settle()
    assert panel.pair_shown() == pairs[4]
    # choosing a pair whose first image is elsewhere in the gallery jumps to that image
    first = {pair: pairs.index(pair) for pair in reversed(pairs)}
    target = next(pair for pair, i in first.items() if pair != pairs[4] and i != 4)
    options = panel.pair.locator("option").all_inner_texts()
    label = next(o for o in options if o.replace("\xa0", " ").startswith(target + " ("))
    panel.pair.select_option(label=label)
    expect(panel.index).to_have_text(str(first[target]))
    panel.settle()
    assert panel.pair_shown() == target


def test_explorer_responds_to_slider_and_gallery(panel):
    panel.gallery.nth(0).click()
    text, picture = panel.settle(), shown(panel.corrected)

    # a learner moves the strength slider with the keyboard, away from the end it may sit at ...
    handle = panel.cell.locator(".explorer-strength .noUi-handle")
    at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    panel.press_slider("strength", "ArrowLeft" if at_max else "ArrowRight", times=3)
    expect(panel.status).not_to_have_text(text, timeout=WAIT_MS)
    text, picture = panel.settle(), wait_for_new_picture(panel.corrected, picture)

    # ... then clicks another image in the gallery
    first_index, change = panel.index.inner_text(), shown(panel.delta)
    panel.gallery.nth(1).click()
    expect(panel.index).not_to_have_text(first_index, timeout=WAIT_MS)
    expect(panel.status).not_to_have_text(text, timeout=WAIT_MS)
    wait_for_new_picture(panel.corrected, picture)
    wait_for_new_picture(panel.delta, change)


def test_a_solution_runs_again_in_the_live_page(page, lab):
    """Solution 2 writes a method, adds its row to a table of methods and opens an explorer
    offering it; run it again (a learner does), then use the new method in its panel."""
    index = solutions()[1]
    cell = cell_at(page, index)
    cell.evaluate("cell => cell.scrollIntoView()")
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    expect(prompt).not_to_have_text(before, timeout=WAIT_MS)
    expect(prompt).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=RUN_ALL_SECONDS * 1000)
    assert cell.locator(STDERR).filter(has_text="Traceback").count() == 0
    label = "sign line search"  # the solution's row, which it prints beside DeepFool
    expect(cell.locator(".jp-OutputArea-output", has_text=f"{label}: ")).to_have_count(1)
    mine = Panel(page, cell, lab)
    mine.choose_method(label)
    budget = int(mine.budget.inner_text())
    assert mine.queries() <= budget and mine.status.inner_text().count("L2") == 1
    first_five = Panel(page, cell_at(page, solutions()[0]), lab)
    expect(first_five.gallery).to_have_count(5)
