"""The studio page in a real browser: headless Chromium (Debian's chromium + chromium-driver) drives the
page against a real server (uvicorn on a free loopback port, a previz board of 3 small scenes).

The page is plain JS with no build step, so the only way to know it works is to run it: type a
logline, watch the frames arrive over Server-Sent Events, edit a scene, re-render one panel, and
check both what the page shows and what changed on disk. A static check (no browser) guards the
page's rules that a review would otherwise have to catch by eye: no markup built from strings, no
file from the internet, every word in English and Russian.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

STATIC = Path(__file__).resolve().parents[1] / "src" / "autokose" / "service" / "static"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOKEN = "browser-test-token"
# Without the background-networking flags Chromium keeps calling home, which a closed network answers slowly.
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-default-apps", "--disable-extensions", "--lang=en-US")
# Selenium's mouse actions cannot drive HTML5 drag and drop; these are the events a real drag fires.
DRAG = """
const [source, target] = arguments, data = new DataTransfer();
const opts = {bubbles: true, cancelable: true, dataTransfer: data};
source.dispatchEvent(new DragEvent("dragstart", opts));
target.dispatchEvent(new DragEvent("dragover", opts));
target.dispatchEvent(new DragEvent("drop", opts));
source.dispatchEvent(new DragEvent("dragend", opts));
"""


# -- the page's rules, without a browser ----------------------------------------------------


def test_page_builds_no_markup_from_strings_and_loads_nothing_from_outside():
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    code = re.sub(r"^\s*//.*$", "", js, flags=re.M)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code, f"app.js uses {sink}: user text must go in with textContent"
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", text), f"{name} loads a file from outside"
        assert "@import" not in text and "url(http" not in text, f"{name} loads a file from outside"


def test_every_word_has_english_and_russian():
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"\n  (en|ru): \{(.*?)\n  \},", js, flags=re.S))
    keys = {lang: set(re.findall(r'"([a-z_]+\.[a-z_.]+)":', body)) for lang, body in blocks.items()}
    assert set(keys) == {"en", "ru"} and len(keys["en"]) > 50
    assert keys["en"] == keys["ru"], f"missing words: {sorted(keys['en'] ^ keys['ru'])}"
    used = set(re.findall(r'data-i18n(?:-placeholder)?="([^"]+)"', (STATIC / "index.html").read_text("utf-8")))
    used |= set(re.findall(r'\bt\("([a-z_]+\.[a-z_.]+)"', js))
    assert used <= keys["en"], f"words used but not defined: {sorted(used - keys['en'])}"


# -- a real server and a real browser -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def studio(tmp_path):
    """The studio (API + workers + page) served by uvicorn in a thread; yields (url, boards dir)."""
    uvicorn = pytest.importorskip("uvicorn")
    from autokose.service.api import create_app

    boards = tmp_path / "boards"
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(boards, TOKEN), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", boards
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def browser(tmp_path, monkeypatch):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1440,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait(driver, condition, timeout: float = 120, what: str = "the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), f"waiting for {what}")


def _status(driver) -> str:
    return driver.execute_script("const s = document.getElementById('board-status'); return s && s.dataset.status;")


def _panel(driver, n: int, css: str, prop: str):
    """A property of an element in panel n, read in one script call (the grid is rebuilt as the board changes,
    so an element found in one call may be gone in the next)."""
    return driver.execute_script(
        "const e = document.querySelector(`#panels .panel[data-index='${arguments[0]}'] ${arguments[1]}`);"
        "return e ? arguments[2].split('.').reduce((v, k) => v && v[k], e) : null;", n, css, prop)


def _jobs(url: str, board_id: str) -> list[dict]:
    import httpx

    answer = httpx.get(f"{url}/api/boards/{board_id}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    return answer.raise_for_status().json()["jobs"]


def _no_horizontal_scroll(driver) -> tuple[int, int]:
    return tuple(driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];"))


def _js_errors(driver) -> list[str]:
    """Script errors from the console; a failed request (our 422 on purpose) is not one."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]


def _shot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    if os.environ.get("AUTOKOSE_ARTIFACTS"):
        target = Path(os.environ["AUTOKOSE_ARTIFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / name)
    return path


@pytest.mark.slow
def test_studio_in_a_browser(browser, studio, tmp_path):
    from selenium.webdriver.common.by import By

    url, boards = studio
    d = browser
    d.get(f"{url}/?token={TOKEN}#new")
    _wait(d, lambda d: d.find_element(By.ID, "view-new").is_displayed(), 30, "the new-board form")
    assert d.find_element(By.ID, "create").text == "Create"  # --lang=en-US: English

    # A logline the server refuses: the page shows its one-line reason, not JSON and not a stack trace.
    d.find_element(By.ID, "logline").send_keys("   ")
    d.find_element(By.ID, "create").click()
    message = _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#messages .message.error .message-text"),
                    30, "the error message")[0].text
    assert "logline" in message.lower() and "{" not in message and "Traceback" not in message
    assert not list(boards.glob("b-*")), "a refused board must not be created"

    # A board: 3 scenes, small previz frames; the frames arrive while the job runs.
    d.find_element(By.ID, "logline").clear()
    d.find_element(By.ID, "logline").send_keys("Aldar Köse sells the greedy Bai a golden egg")
    scenes = d.find_element(By.ID, "scenes")
    scenes.clear()
    scenes.send_keys("3")
    d.find_element(By.CSS_SELECTOR, "#new-board details summary").click()
    d.find_element(By.ID, "width").send_keys("256")
    d.find_element(By.ID, "create").click()
    _wait(d, lambda d: d.current_url.split("#")[-1].startswith("board/b-"), 30, "the board page")
    board_id = d.current_url.split("#board/")[-1]
    folder = boards / board_id
    _wait(d, lambda d: _status(d) == "done", 180, "the board job to finish")
    panels = d.find_elements(By.CSS_SELECTOR, "#panels .panel")
    assert [p.get_attribute("data-index") for p in panels] == ["1", "2", "3"]
    _wait(d, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#panels img.frame')].filter(i => i.complete && i.naturalWidth)"
        ".length") == 3, 30, "the three frames to load")
    widths = d.execute_script("return [...document.querySelectorAll('#panels img.frame')].map(i => i.naturalWidth)")
    assert widths == [256, 256, 256]
    # The frames came live: each image was swapped in by a "frame" event ("v=e<event id>"; a frame loaded with
    # the board would be "v=s<sha>"), and the stream's progress bars end full.
    sources = d.execute_script("return [...document.querySelectorAll('#panels img.frame')].map(i => i.src)")
    assert all(re.search(r"[?&]v=e\d+", src) for src in sources), sources
    bars = d.execute_script("return [...document.querySelectorAll('#progress .stage progress')]"
                            ".map(p => [p.value, p.max])")
    assert bars and all(value == top for value, top in bars), bars
    assert d.find_element(By.CSS_SELECTOR, '#progress .stage[data-stage="render"] .stage-count').text == "3/3"
    story = json.loads((folder / "story.json").read_text(encoding="utf-8"))
    assert [p.find_element(By.CSS_SELECTOR, ".caption").text for p in panels] == \
        [s["caption"] for s in story["scenes"]]
    assert d.find_element(By.CSS_SELECTOR, '#downloads a[data-file="board.pdf"]').get_attribute("href").endswith(
        f"/api/boards/{board_id}/files/board.pdf?token={TOKEN}")
    before = {n: _sha(folder / "frames" / f"0{n}.png") for n in (1, 2, 3)}
    d.set_window_size(1440, 900)
    _shot(d, tmp_path, "studio-board-1440.png")

    # Edit scene 2: a caption with markup in it (shown as text) and another shot size (new pixels).
    panel = d.find_element(By.CSS_SELECTOR, '#panels .panel[data-index="2"]')
    panel.find_element(By.CSS_SELECTOR, "button.edit").click()
    caption = "Алдар смеётся <b>not bold</b>"
    field = panel.find_element(By.CSS_SELECTOR, ".editor textarea[name=caption]")
    field.clear()
    field.send_keys(caption)
    old_shot = story["scenes"][1]["shot"]
    new_shot = "close_up" if old_shot != "close_up" else "wide"
    d.execute_script("const s = arguments[0]; s.value = arguments[1]; s.dispatchEvent(new Event('change'));",
                     panel.find_element(By.CSS_SELECTOR, ".editor select[name=shot]"), new_shot)
    panel.find_element(By.CSS_SELECTOR, ".editor button.save").click()
    _wait(d, lambda d: _panel(d, 2, ".caption", "innerText") == caption, 30, "the new caption")
    assert _panel(d, 2, ".caption", "children.length") == 0, "a caption must be shown as text, never as markup"
    saved = json.loads((folder / "story.json").read_text(encoding="utf-8"))["scenes"][1]
    assert (saved["caption"], saved["shot"]) == (caption, new_shot)
    assert _sha(folder / "frames" / "02.png") == before[2], "an edit alone draws nothing"

    # Re-render panel 2 only: its frame file changes, the others do not, and the page swaps in the new image.
    old_src = _panel(d, 2, "img.frame", "src")
    d.find_element(By.CSS_SELECTOR, '#panels .panel[data-index="2"] button.rerender').click()
    _wait(d, lambda d: _sha(folder / "frames" / "02.png") != before[2] and _status(d) == "done", 180,
          "the re-render to finish")
    _wait(d, lambda d: _panel(d, 2, "img.frame", "src") != old_src, 30, "the new frame 2 on the page")
    assert {n: _sha(folder / "frames" / f"0{n}.png") for n in (1, 3)} == {1: before[1], 3: before[3]}
    assert _panel(d, 2, ".caption", "innerText") == caption

    # Drag panel 3 onto panel 1 (HTML5 drag and drop, as a mouse makes it): the scene and its frame move, undrawn.
    hashes = {n: _sha(folder / "frames" / f"0{n}.png") for n in (1, 2, 3)}
    third = _panel(d, 3, ".caption", "innerText")
    d.execute_script(DRAG, d.find_element(By.CSS_SELECTOR, '#panels .panel[data-index="3"]'),
                     d.find_element(By.CSS_SELECTOR, '#panels .panel[data-index="1"]'))
    _wait(d, lambda d: _panel(d, 1, ".caption", "innerText") == third, 30, "the moved panel")
    assert {n: _sha(folder / "frames" / f"0{n}.png") for n in (1, 2, 3)} == {1: hashes[3], 2: hashes[1], 3: hashes[2]}
    assert json.loads((folder / "story.json").read_text(encoding="utf-8"))["scenes"][2]["caption"] == caption

    # Candidates: when the manifest lists them (a best-of-K diffusion board), each gets a Pick button that queues a
    # re-render keeping that candidate. Previz draws none, so two are listed here by hand.
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    (folder / "candidates").mkdir(exist_ok=True)
    for k in (0, 1):
        shutil.copy2(folder / "frames" / "01.png", folder / "candidates" / f"01_{k}.png")
    manifest["frames"]["01"]["candidates"] = [
        {"k": k, "seed": k, "score": 0.5 + k / 10, "file": f"candidates/01_{k}.png", "id_swaps": []} for k in (0, 1)]
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    d.refresh()
    _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, '#panels .panel[data-index="1"] .candidate img')) == 2,
          30, "the candidates of panel 1")
    d.find_element(By.CSS_SELECTOR, '#panels .panel[data-index="1"] .candidate[data-k="1"] button.pick').click()
    _wait(d, lambda d: len(jobs := _jobs(url, board_id)) == 3 and jobs[0]["status"] == "done", 60, "the pick job")
    assert _jobs(url, board_id)[0]["params"]["picks"] == {"1": 1}

    # Phone width (375 as the brief's test, 360 as the smallest the page is made for): one column, nothing wider
    # than the screen, every panel button on screen, the scene editor too.
    for width in (375, 360):
        d.set_window_size(width, 800)
        _wait(d, lambda d: d.execute_script("return document.documentElement.clientWidth") <= width, 10, "the resize")
        if width == 360:
            d.find_element(By.CSS_SELECTOR, '#panels .panel[data-index="1"] button.edit').click()
        scroll, client = _no_horizontal_scroll(d)
        assert scroll <= client, f"horizontal scroll at {width} px: content {scroll}px in {client}px"
        lefts = d.execute_script("return [...document.querySelectorAll('#panels .panel')].map(p => p.offsetLeft)")
        assert len(set(lefts)) == 1, f"panels not in one column: {lefts}"
        right = d.execute_script("return Math.max(...[...document.querySelectorAll('#panels button, .editor *')]"
                                 ".map(b => b.getBoundingClientRect().right))")
        assert right <= client, f"a control ends at {right}px on a {client}px screen"
        if width == 375:
            _shot(d, tmp_path, "studio-board-375.png")
    d.get(f"{url}/?token={TOKEN}#new")
    _wait(d, lambda d: d.find_element(By.ID, "view-new").is_displayed(), 30, "the new-board form")
    scroll, client = _no_horizontal_scroll(d)
    assert scroll <= client, f"the form scrolls sideways at phone width: {scroll}px in {client}px"

    # A character's reference image, uploaded from the form (the server stores it re-encoded).
    picture = tmp_path / "aldar.jpg"
    Image.new("RGB", (64, 64), (200, 120, 40)).save(picture)
    d.get(f"{url}/?token={TOKEN}#characters")
    _wait(d, lambda d: d.find_element(By.ID, "view-characters").is_displayed(), 30, "the characters page")
    d.find_element(By.ID, "char-id").send_keys("aldar")
    d.find_element(By.ID, "char-name").send_keys("Алдар Көсе")
    d.find_element(By.ID, "char-images").send_keys(str(picture))
    d.find_element(By.ID, "char-submit").click()
    item = _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, '#char-list li[data-id="aldar"]'), 30,
                 "the uploaded character")[0]
    assert "Алдар Көсе" in item.text and "images: 1" in item.text
    assert len(list((boards / ".autokose" / "characters" / "aldar" / "images").glob("*.png"))) == 1
    scroll, client = _no_horizontal_scroll(d)
    assert scroll <= client, f"the characters page scrolls sideways at phone width: {scroll}px in {client}px"

    # Training with a model this machine does not have: the job fails, and the page says why in one line.
    item = d.find_element(By.CSS_SELECTOR, '#char-list li[data-id="aldar"]')
    item.find_element(By.CSS_SELECTOR, "form.train input[name=model]").send_keys("no/such-model")
    steps = item.find_element(By.CSS_SELECTOR, "form.train input[name=steps]")
    steps.clear()
    steps.send_keys("2")
    item.find_element(By.CSS_SELECTOR, "form.train button[type=submit]").click()
    _wait(d, lambda d: "failed" in d.find_element(By.CSS_SELECTOR, '#char-list li[data-id="aldar"] .train-progress')
          .text, 120, "the training job to fail")
    errors = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#messages .message.error .message-text")]
    assert any("no/such-model" in e for e in errors) and not any("Traceback" in e for e in errors), errors

    # Russian: the toggle switches the words and the choice outlives a reload.
    d.find_element(By.ID, "lang-toggle").click()
    assert d.find_element(By.CSS_SELECTOR, "#view-characters h1").text == "Персонажи"
    assert "изображений: 1" in d.find_element(By.CSS_SELECTOR, '#char-list li[data-id="aldar"]').text
    d.get(f"{url}/?token={TOKEN}#boards")
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#board-list .board-item"), 30, "the boards list")
    assert d.find_element(By.CSS_SELECTOR, "#view-boards h1").text == "Раскадровки"
    assert d.execute_script("return document.documentElement.lang") == "ru"
    _shot(d, tmp_path, "studio-boards-375-ru.png")
    assert not _js_errors(d)
