"""The app in a real browser: headless Chromium (Debian's, driven by Playwright) uploads a clip,
presses Analyse, waits for the answer and saves a screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from app_helpers import free_port, load_app

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "checkpoints" / "mie-synthetic-megc2019"
# Debian's package by default; MIE_CHROMIUM points at another Chromium or Chrome (scripts/ensure-chromium,
# which `make test` runs first, checks the same places)
CHROMIUM = Path(os.environ.get("MIE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium")
# Never let Playwright fetch a browser of its own; these flags keep Chromium off the network too.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


@pytest.fixture(scope="module")
def playwright():
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing; the browser test drives Debian's Chromium. Install it with "
            "`apt-get install -y --no-install-recommends chromium` (`make test` does this as root on Debian), or set "
            "MIE_CHROMIUM=/path/to/chrome; never `playwright install`."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install 'modeling_mie[test]' (the Python package only).")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


def write_y4m(video: Path, target: Path, hold: int = 10) -> Path:
    """A clip as an uncompressed YUV4MPEG2 file, the format Chromium's fake camera plays in a loop;
    the first frame is held `hold` frames so that the recording starts on a still face."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    frames = [frames[0]] * hold + frames
    height, width = frames[0].shape[:2]
    with open(target, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return target


def screenshot(page, shot: Path) -> Path:
    """The whole page as a PNG once images and charts have painted; copied to $MIE_SCREENSHOT_DIR
    when set, to look at."""
    page.wait_for_timeout(1500)
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("MIE_SCREENSHOT_DIR"):
        target = Path(os.environ["MIE_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)
    return shot


@pytest.fixture(scope="module")
def app_server(landmarker_path):
    """(url, MieDemo) of the app served on a free port."""
    if not (BUNDLED / "config.json").is_file():
        pytest.fail(f"The bundled demo checkpoint is missing ({BUNDLED}); the app loads it by default.")
    app = load_app()
    from modeling_mie.app_support import AppLimits, MieDemo

    mie = MieDemo(BUNDLED, AppLimits(), display_name="checkpoints/mie-synthetic-megc2019")
    demo = app.build_demo(mie)
    port = free_port()
    app.launch(demo, mie.limits, "127.0.0.1", port, prevent_thread_lock=True)
    try:
        yield f"http://127.0.0.1:{port}/", mie
    finally:
        demo.close()
        mie.close()


@pytest.fixture(scope="module")
def app_url(app_server):
    return app_server[0]


def test_upload_analyse_and_screenshot(browser, app_url, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_url)
    page.get_by_text("mie: facial micro-expression recognition").wait_for(timeout=30_000)
    assert page.get_by_text("trained on synthetic clips").first.is_visible()
    page.locator("input[type=file]").first.set_input_files(str(REPO / "examples" / "surprise.webm"))
    page.locator("video").first.wait_for(timeout=30_000)  # the upload landed and the player shows it
    page.get_by_role("button", name="Analyse clip").click()
    page.get_by_text("the model saw").wait_for(timeout=90_000)

    # the answer: three probabilities, six captioned heatmaps, the annotated frame, the plot
    labels = page.locator("[data-testid='label-output-value']").first.inner_text(timeout=10_000)
    assert any(name in labels for name in ("negative", "positive", "surprise")), labels
    for region in ("left eye", "right eye", "nose", "left cheek", "right cheek", "mouth"):
        assert page.get_by_text(region + " ", exact=False).first.is_visible(), region
    page.locator(".vega-embed:visible").first.wait_for(timeout=30_000)  # the plot renders after the text
    assert page.locator(".vega-embed:visible").count() == 1
    assert "Answered by the model in the local folder" in page.locator("#mie-provenance").inner_text()
    assert not page.get_by_text("This clip cannot be analysed").is_visible()
    assert not errors, errors

    shot = screenshot(page, tmp_path / "mie-app.png")
    assert shot.stat().st_size > 50_000
    page.close()


def test_a_bad_upload_shows_the_message_and_the_page_stays_usable(browser, app_url, tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_text("not a video\n" * 100)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.locator("input[type=file]").first.set_input_files(str(bad))
    page.get_by_role("button", name="Analyse clip").click()
    page.get_by_text('"holiday.mp4" is not a video this demo can read').wait_for(timeout=60_000)
    assert not page.get_by_text("Traceback").count()
    page.close()


def test_a_webcam_recording_is_answered(playwright, app_server, tmp_path, monkeypatch):
    """Chromium's fake camera plays an example face; the app records it (MediaRecorder WebM, which
    OpenCV must decode) and answers like for an upload. Unlike the live stream, the recording
    arrives as the camera filmed it, not mirrored (checked against the camera's file)."""
    import cv2
    import numpy as np

    app_url, mie = app_server
    received = []
    predict = mie.predict
    monkeypatch.setattr(mie, "predict", lambda path: (received.append(path), predict(path))[1])
    camera = write_y4m(REPO / "examples" / "positive.webm", tmp_path / "face.y4m")
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"]
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
    try:
        context = chromium.new_context(
            viewport={"width": 1400, "height": 1000}, permissions=["camera", "microphone"]
        )
        page = context.new_page()
        page.goto(app_url)
        page.get_by_role("button", name="Capture from camera").click()
        page.get_by_text("Click to Access Webcam").click()
        record = page.get_by_role("button", name="start recording")  # the same button stops
        record.click()
        page.wait_for_timeout(2000)
        record.click()
        page.get_by_role("button", name="Trim video to selection").wait_for(timeout=30_000)  # the recording is in
        page.get_by_role("button", name="Analyse clip").click()
        page.get_by_text("the model saw").wait_for(timeout=90_000)
        assert "fps" in page.locator("#mie-summary").inner_text()
        ok, got = cv2.VideoCapture(str(received[-1])).read()
        first = cv2.VideoCapture(str(REPO / "examples" / "positive.webm")).read()[1]
        first = cv2.resize(first, (got.shape[1], got.shape[0])).astype(int)
        assert ok and np.abs(got - first).mean() < np.abs(got - first[:, ::-1]).mean()
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def five_minutes(tmp_path_factory, landmarker_path):
    """A 5-minute upload: the 8 s synthetic stretch (a micro-expression at 4.0-4.33 s, a blink at
    6 s) 38 times at 30 fps, 320 x 240 (small, so that spotting it takes about a minute here)."""
    from long_video_helpers import render_stretch, write_video

    path = tmp_path_factory.mktemp("long") / "interview.avi"
    return write_video(path, render_stretch(), repeats=38, size=(320, 240))


def test_a_five_minute_upload_shows_a_timeline_and_clickable_intervals(browser, app_url, five_minutes, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_url)
    page.get_by_role("tab", name="Long video").click()
    tab = page.locator("#mie-long-summary").locator("..").locator("..").locator("..")
    page.locator("input[type=file]").nth(1).set_input_files(str(five_minutes))
    page.locator("video").first.wait_for(timeout=60_000)  # the upload landed (the clip tab holds no video)
    page.get_by_role("button", name="Spot expressions").click()
    page.get_by_text("interval(s) spotted").wait_for(timeout=600_000)
    summary = page.locator("#mie-long-summary").inner_text()
    assert "304.0 s at 30 fps" in summary, summary
    found = int(summary.split(" interval(s)")[0].split()[-1].strip("*"))
    assert 30 <= found <= 50, summary  # 38 micro-expressions; a few edges of the repeats
    table = page.locator("#mie-intervals")
    assert "micro" in table.inner_text() and "left cheek" in table.inner_text()
    page.locator(".vega-embed:visible").first.wait_for(timeout=30_000)  # the timeline renders after the text
    assert page.locator(".vega-embed:visible").count() == 1
    table.locator("[role=gridcell]:visible", has_text="micro").first.click()  # choose the first interval
    page.get_by_text("Interval 1 (").wait_for(timeout=120_000)
    assert "Read" in page.locator("#mie-interval-summary").inner_text()
    assert not tab.get_by_text("cannot be analysed").count()
    assert not errors, errors
    assert screenshot(page, tmp_path / "mie-long-video.png").stat().st_size > 50_000
    page.close()


def test_a_live_webcam_session_spots_the_expression(playwright, app_server, tmp_path):
    """Chromium's fake camera loops the 8 s stretch; the live tab streams it to the server, which
    spots the micro-expression a few seconds after it ends. The frames arrive as the camera sends
    them: the webcam view's mirroring is for display only (checked against the file)."""
    import cv2
    import numpy as np
    from long_video_helpers import render_stretch, write_video

    app_url, mie = app_server
    clip = write_video(tmp_path / "stretch.avi", render_stretch())
    camera = write_y4m(clip, tmp_path / "face.y4m", hold=1)
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"]
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
    try:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera", "microphone"])
        page = context.new_page()
        page.goto(app_url)
        page.get_by_role("tab", name="Live webcam").click()
        page.get_by_text("Click to Access Webcam").click()
        page.get_by_role("button", name="capture photo").click()  # "Record": the stream starts
        page.get_by_text("Following the face").wait_for(timeout=60_000)
        status = page.locator("#mie-live-status")
        page.wait_for_function(
            "() => /[1-9]\\d* interval\\(s\\) spotted/.test(document.querySelector('#mie-live-status').innerText)",
            timeout=120_000,
        )
        # the table's visible cells (Gradio keeps a hidden copy of the rows for measuring)
        page.locator("#mie-live-intervals [role=gridcell]:visible", has_text="micro").first.wait_for(timeout=30_000)
        assert "interval(s) spotted" in status.inner_text()
        received = mie.last_live.first_frame
        first = cv2.cvtColor(cv2.VideoCapture(str(clip)).read()[1], cv2.COLOR_BGR2RGB)
        first = cv2.resize(first, (received.shape[1], received.shape[0]))
        as_sent = np.abs(received.astype(int) - first).mean()
        mirrored = np.abs(received.astype(int) - first[:, ::-1]).mean()
        assert as_sent < mirrored, (as_sent, mirrored)
    finally:
        chromium.close()
