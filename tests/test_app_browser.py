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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(app_run):
    import uvicorn

    from shiftbench.app.server import create_app

    port = _free_port()
    config = uvicorn.Config(create_app([app_run]), host="127.0.0.1", port=port, log_level="warning")
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


def open_view(d, server, view, query=""):
    base, rid = server
    d.get(f"{base}/run/{rid}/{view}{query}")
    wait(d, lambda d: d.execute_script("return document.body.dataset.ready === '1'"))


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
    before = driver.find_element(By.ID, "img-overlay").get_attribute("src")
    slider = driver.find_element(By.ID, "severity")
    slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)  # 3 -> 5
    wait(driver, lambda d: "severity 5" in d.find_element(By.ID, "cap-input").text)
    after = driver.find_element(By.ID, "img-overlay").get_attribute("src")
    assert after != before
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
    shot(driver, "draw")


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
    shot(driver, "compare")


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
