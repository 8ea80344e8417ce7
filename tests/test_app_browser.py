"""End-to-end tests of the web app in headless Chromium (Selenium + the system
chromedriver) against a real uvicorn server on a free loopback port.

Skipped, with the reason, when chromium/chromedriver or selenium are missing. Saves a
screenshot of each view (inspect, draw, compare, study) to a temporary folder, or to
``$SHIFTBENCH_SCREENSHOTS`` when set: ``SHIFTBENCH_SCREENSHOTS=docs/screenshots make test``
refreshes the README's images (a plain test run leaves the tree clean).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

CHROMIUM = (
    os.environ.get("SHIFTBENCH_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
CHROMEDRIVER = os.environ.get("SHIFTBENCH_CHROMEDRIVER") or shutil.which("chromedriver")
SCREENSHOTS = Path(
    os.environ.get("SHIFTBENCH_SCREENSHOTS") or tempfile.mkdtemp(prefix="shiftbench-shots-")
).resolve()
WAIT = 30


def _skip_reason() -> str | None:
    try:
        import fastapi  # noqa: F401
        import selenium  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return f"browser tests need the test extra ({exc.name} missing): pip install -e .[test]"
    if not CHROMIUM or not CHROMEDRIVER:
        return (
            "browser tests need chromium and chromedriver on PATH "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    return None


if (_reason := _skip_reason()) is not None:
    print(f"\nskipping browser tests: {_reason}")
    pytest.skip(_reason, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="session")
def app_run(tiny_synthetic, tmp_path_factory):
    from shiftbench.testing.runs import tiny_run

    return tiny_run(tmp_path_factory.getbasetemp() / "app_run", tiny_synthetic)


@pytest.fixture(scope="module")
def extra_runs(app_run, tiny_synthetic, tmp_path_factory):
    """``one_model``: app_run with only its PatchCore saved; ``study``: a two-category run
    with report-named figures (see test_app_api.study_run)."""
    from test_app_api import study_run

    root = tmp_path_factory.mktemp("extra_runs")
    one = root / "one_model"
    shutil.copytree(app_run, one, ignore=shutil.ignore_patterns("*__ae__*"))
    images = sorted(str(p) for p in Path(tiny_synthetic).rglob("test/*/*.png"))
    return [one, study_run(root / "study", images, _plot)]


def _plot(path: Path, title: str) -> None:
    """A small real chart titled ``title`` (what a report figure looks like)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    ax = fig.add_subplot()
    x = np.linspace(0, 1, 50)
    for k in range(2):
        ax.plot(x, x ** (1 + k), label=f"model {k}")
    ax.set_title(title)
    ax.legend()
    fig.savefig(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(app_run, extra_runs):
    import uvicorn

    from shiftbench.app.server import create_app

    port = _free_port()
    app = create_app([app_run, *extra_runs], preload=True)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        if time.time() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app_run.name
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--metrics-recording-only",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(WAIT)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    """A photo-like brick-ish image to upload (JPEG, not the model's size)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:120, 0:150]
    base = 120 + 40 * np.sin(x / 9.0) * np.cos(y / 13.0)
    img = np.clip(base[..., None] + rng.normal(0, 8, (120, 150, 3)), 0, 255).astype(np.uint8)
    img[40:60, 60:100] = (20, 20, 20)
    path = tmp_path_factory.mktemp("upload") / "part.jpg"
    Image.fromarray(img).save(path, quality=92)
    return path


def wait(d, cond, timeout=WAIT):
    return WebDriverWait(d, timeout).until(cond)


def open_view(d, server, view, query="", rid=None):
    base, first = server
    d.get(f"{base}/run/{rid or first}/{view}{query}")
    wait(d, lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    # every text and class the status line takes, in order (to see what showed while loading)
    d.execute_script(
        "window.statuses = []; const s = document.getElementById('status');"
        "new MutationObserver(() => window.statuses.push([s.className, s.textContent]))"
        ".observe(s, {childList: true, characterData: true, subtree: true, attributes: true});"
        "performance.clearResourceTimings();"
    )


def statuses(d) -> list[tuple[str, str]]:
    return [tuple(x) for x in d.execute_script("return window.statuses")]


def requests(d, path="/api/predict") -> list[str]:
    """The URLs of the requests to ``path`` made since the page opened (or was reset)."""
    return d.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(u => new URL(u).pathname === arguments[0])",
        path,
    )


def settled(d) -> bool:
    """No request running: the status line is not in its busy state."""
    return "busy" not in d.find_element(By.ID, "status").get_attribute("class")


def status(d) -> str:
    return d.find_element(By.ID, "status").text


def shot(d, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def score_of(el) -> float:
    return float(el.find_element(By.CSS_SELECTOR, ".score").text)


def pick_sample(d, anomalous=True):
    sel = Select(d.find_element(By.ID, "sample"))
    wanted = "(anomalous)" if anomalous else "(normal)"
    option = next(o for o in sel.options if wanted in o.text)
    sel.select_by_value(option.get_attribute("value"))
    return option.get_attribute("value")


def test_upload_shows_composite(driver, server, image_file):
    open_view(driver, server, "inspect")
    driver.find_element(By.ID, "file").send_keys(str(image_file))
    wait(driver, EC.visibility_of_element_located((By.ID, "result")))
    wait(driver, lambda d: "score" in d.find_element(By.ID, "verdict").text)
    for img in ("img-input", "img-overlay", "img-region"):
        src = driver.find_element(By.ID, img).get_attribute("src")
        assert src.startswith("data:image/png;base64,")
    assert "part.jpg: 150×120 JPEG" in driver.find_element(By.ID, "image-info").text
    assert "threshold" in driver.find_element(By.ID, "verdict").text


def test_slider_changes_heatmap(driver, server):
    # continues on the uploaded image of the previous test
    Select(driver.find_element(By.ID, "perturb")).select_by_value("gaussian_blur")
    wait(driver, lambda d: "gaussian_blur" in d.find_element(By.ID, "cap-input").text)
    wait(driver, settled)
    before = driver.find_element(By.ID, "img-overlay").get_attribute("src")
    driver.execute_script("performance.clearResourceTimings()")
    slider = driver.find_element(By.ID, "severity")
    slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)  # 3 -> 5
    wait(driver, lambda d: "severity 5" in d.find_element(By.ID, "cap-input").text)
    wait(driver, settled)
    after = driver.find_element(By.ID, "img-overlay").get_attribute("src")
    assert after != before
    # each key fires "input" and "change": coalesced into at most one request per level
    sent = requests(driver)
    assert 1 <= len(sent) <= 2 and "severity=5" in sent[-1], sent
    assert re.fullmatch(r"\w+: \d+(\.\d)? m?s \(server \d+(\.\d)? m?s\)", status(driver))
    shown = driver.execute_script("return [2250.4, 85.4, 12345, null].map(fmtMs)")
    assert shown == ["2250 ms", "85 ms", "12.3 s", "—"]  # never "2.25e+3 ms"
    params = json.loads(driver.find_element(By.ID, "params").get_attribute("textContent"))
    assert params["perturbation"]["params"]["gaussian_blur"]
    shot(driver, "inspect")


def test_drawn_stroke_changes_score(driver, server):
    open_view(driver, server, "draw")
    pick_sample(driver, anomalous=False)
    wait(driver, lambda d: "score" in d.find_element(By.ID, "before").text)
    before = score_of(driver.find_element(By.ID, "before"))
    Select(driver.find_element(By.ID, "kind")).select_by_value("scratch")
    canvas = driver.find_element(By.ID, "strokes")
    (
        ActionChains(driver)
        .move_to_element_with_offset(canvas, -120, -60)
        .click_and_hold()
        .move_by_offset(80, 30)
        .move_by_offset(90, 40)
        .move_by_offset(60, 10)
        .release()
        .perform()
    )
    driver.find_element(By.ID, "apply").click()
    wait(driver, lambda d: "after" in d.find_element(By.ID, "verdict").text)
    after = score_of(driver.find_element(By.ID, "verdict"))
    assert after != pytest.approx(before)
    assert "IoU" in driver.find_element(By.ID, "verdict").text
    assert "outline: drawn defect" in driver.find_element(By.ID, "cap-region").text
    shot(driver, "draw")
    # no strokes: refused with a message, and the verdict of the last stroke goes
    driver.find_element(By.ID, "clear").click()
    driver.find_element(By.ID, "apply").click()
    wait(driver, lambda d: "nothing drawn" in status(d))
    assert "error" in driver.find_element(By.ID, "status").get_attribute("class")
    assert "after" not in driver.find_element(By.ID, "verdict").text
    assert not driver.find_element(By.ID, "after").is_displayed()


def test_compare_one_panel_per_model(driver, server):
    open_view(driver, server, "compare")
    checks = driver.find_elements(By.CSS_SELECTOR, ".model-check")
    assert {c.get_attribute("value") for c in checks} == {"ae", "patchcore"}
    pick_sample(driver, anomalous=True)
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".cpanel")) == 2)
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".cname")]
    assert sorted(n.split()[0] for n in names) == ["ae", "patchcore"]
    his = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".cpanel .hi")]
    assert len(set(his)) == 2  # each model on its own colour scale
    assert not driver.find_element(By.ID, "compare-note").is_displayed()
    Select(driver.find_element(By.ID, "perturb")).select_by_value("gaussian_blur")
    wait(driver, lambda d: any("gaussian_blur" in u for u in requests(d)))
    wait(driver, settled)
    # one arrow key: "input" and "change" ask for the same level, one request per model
    driver.execute_script("performance.clearResourceTimings()")
    driver.find_element(By.ID, "severity").send_keys(Keys.ARROW_RIGHT)
    wait(driver, lambda d: len(requests(d)) >= 2)
    wait(driver, settled)
    time.sleep(0.5)  # a second round would have started by now
    sent = requests(driver)
    assert len(sent) == 2 and all("severity=4" in u for u in sent), [u[-60:] for u in sent]
    assert len(driver.find_elements(By.CSS_SELECTOR, ".cpanel")) == 2
    assert "compared" in status(driver)
    shot(driver, "compare")


def test_inspect_loading_legend_and_new_images(driver, server, image_file, tmp_path):
    """The first prediction of a model says it is loading; the region panel's legend names
    both outlines; a new upload resets the sample picker; a refused upload clears the old
    result; an error goes as soon as the next request starts."""
    open_view(driver, server, "inspect", rid="one_model")  # its models are not loaded yet
    pick_sample(driver, anomalous=True)
    wait(driver, lambda d: "score" in d.find_element(By.ID, "verdict").text)
    wait(driver, settled)
    seen = statuses(driver)
    assert any(c == "busy" and "loading patchcore" in t for c, t in seen), seen
    legend = driver.find_element(By.ID, "cap-region").text
    assert "outline: predicted region" in legend and "outline: ground truth" in legend
    assert "e+" not in status(driver) and re.search(r"\d+(\.\d)? m?s", status(driver))
    driver.find_element(By.ID, "file").send_keys(str(image_file))
    wait(driver, lambda d: "part.jpg" in d.find_element(By.ID, "image-info").text)
    wait(driver, lambda d: "score" in d.find_element(By.ID, "verdict").text)
    assert Select(driver.find_element(By.ID, "sample")).first_selected_option.text == "—"
    assert "ground truth" not in driver.find_element(By.ID, "cap-region").text
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    driver.find_element(By.ID, "file").send_keys(str(bad))
    wait(driver, lambda d: "upload refused" in status(d))
    assert "unreadable image" in status(driver)
    assert not driver.find_element(By.ID, "result").is_displayed()
    assert driver.find_element(By.ID, "image-info").text == ""
    shot(driver, "inspect_refused")
    driver.execute_script("window.statuses = []")
    pick_sample(driver, anomalous=False)
    wait(driver, lambda d: "score" in d.find_element(By.ID, "verdict").text)
    first = statuses(driver)[0]
    assert "error" not in first[0] and "refused" not in first[1], first
    assert "error" not in driver.find_element(By.ID, "status").get_attribute("class")


def test_compare_one_model_run_says_it_needs_two(driver, server):
    open_view(driver, server, "compare", rid="one_model")
    note = driver.find_element(By.ID, "compare-note")
    assert note.is_displayed() and "only one" in note.text and "patchcore" in note.text
    pick_sample(driver, anomalous=True)
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".cpanel")) == 1)
    shot(driver, "compare_one_model")


def test_small_upload_warns(driver, server, tmp_path):
    open_view(driver, server, "inspect")
    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (120, 80, 60)).save(dot)
    driver.find_element(By.ID, "file").send_keys(str(dot))
    wait(driver, lambda d: "1x1 px" in d.find_element(By.ID, "warnings").text)
    assert "64x64 px" in driver.find_element(By.ID, "warnings").text
    shot(driver, "inspect_small_upload")


def test_study_figures_captioned_and_mean_last(driver, server):
    open_view(driver, server, "study", rid="study")
    figs = lambda d: d.find_elements(By.CSS_SELECTOR, "#figures figure")  # noqa: E731
    wait(driver, lambda d: len(figs(d)) == 5)
    wait(
        driver,
        lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('#figures img'))"
            ".every(i => i.complete && i.naturalWidth > 0)"
        ),
    )
    captions = [f.find_element(By.TAG_NAME, "figcaption").text for f in figs(driver)]
    assert captions[0].startswith("Degradation. Image AUROC per protocol")
    assert any(c.startswith("ROC and PR, screw") for c in captions)
    widths = {round(f.rect["width"]) for f in figs(driver)}
    assert len(widths) == 1 and widths.pop() >= 500  # an even grid, readable
    rows = lambda d: d.find_elements(By.CSS_SELECTOR, "#metrics tbody tr")  # noqa: E731
    wait(driver, lambda d: len(rows(d)) == 6)

    def categories():
        return [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows(driver)]

    assert categories()[-2:] == ["mean", "mean"]
    for col in (0, 5, 5):  # category, then image_auroc ascending and descending
        driver.find_element(By.CSS_SELECTOR, f"#metrics th[data-col='{col}']").click()
        assert categories()[-2:] == ["mean", "mean"], (col, categories())
    shot(driver, "study_table")
    driver.execute_script("document.getElementById('figures').scrollIntoView()")
    shot(driver, "study_figures")


def test_study_filters_table_and_thumbnail_opens_inspect(driver, server):
    open_view(driver, server, "study")
    rows = lambda d: d.find_elements(By.CSS_SELECTOR, "#metrics tbody tr")  # noqa: E731
    wait(driver, lambda d: len(rows(d)) == 2)
    assert '"config"' in driver.find_element(By.ID, "manifest").get_attribute("textContent")
    Select(driver.find_element(By.CSS_SELECTOR, "[data-filter=model]")).select_by_value("ae")
    wait(driver, lambda d: len(rows(d)) == 1)
    assert rows(driver)[0].find_elements(By.TAG_NAME, "td")[1].text == "ae"
    Select(driver.find_element(By.CSS_SELECTOR, "[data-filter=model]")).select_by_value("")
    wait(driver, lambda d: len(rows(d)) == 2)
    header = driver.find_element(By.CSS_SELECTOR, "#metrics th[data-col='5']")
    header.click()
    wait(
        driver,
        lambda d: (
            "sorted-asc"
            in d.find_element(By.CSS_SELECTOR, "#metrics th[data-col='5']").get_attribute("class")
        ),
    )
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".thumb img")) > 3)
    wait(
        driver,
        lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('.thumb img')).slice(0, 4).every(i => i.complete && i.naturalWidth > 0)"
        ),
    )
    shot(driver, "study")
    thumb = driver.find_elements(By.CSS_SELECTOR, ".thumb")[0]
    sample = thumb.get_attribute("data-sample")
    thumb.click()
    wait(driver, lambda d: "/inspect" in d.current_url)
    wait(driver, EC.visibility_of_element_located((By.ID, "result")))
    wait(driver, lambda d: sample in d.find_element(By.ID, "image-info").text)
    assert re.search(r"score", driver.find_element(By.ID, "verdict").text)


def test_no_request_leaves_loopback(driver, server, image_file):
    base, _ = server
    driver.get_log("performance")  # drop what the earlier tests made
    open_view(driver, server, "inspect")
    driver.find_element(By.ID, "file").send_keys(str(image_file))
    wait(driver, EC.visibility_of_element_located((By.ID, "result")))
    for view in ("draw", "compare", "study"):
        open_view(driver, server, view)
    driver.get(base + "/")
    wait(driver, EC.presence_of_element_located((By.ID, "run-picker")))
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    assert len(urls) > 10
    outside = [u for u in urls if not u.startswith((base + "/", "data:", "blob:"))]
    assert outside == [], outside
