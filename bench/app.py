"""End-to-end seconds of the app, upload to result, for a 1-second 200-fps clip; last line `end_to_end_s=<x>`.

The app runs as `python app.py` in its own process (as a person would start it); the clip is
uploaded and answered through gradio_client, so the figure holds the upload, Gradio's queue and
(de)serialisation, decoding, landmarks, crops, the model with Grad-CAM and the pictures. The
app's own log gives the split per stage (check, preprocess, explain, render); what is left of the
end-to-end time is Gradio and the transfer.

    python bench/app.py [--model PATH_OR_REPO_ID] [--runs 5] [--clip clip.webm]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
STAGE_LINE = re.compile(r"in (?P<total>[\d.]+) s \(check (?P<check>[\d.]+), preprocess (?P<preprocess>[\d.]+), "
                        r"explain (?P<explain>[\d.]+), render (?P<render>[\d.]+)\)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def make_clip(path: Path) -> Path:
    from modeling_mie.examples import make_benchmark_clip

    return make_benchmark_clip(path, seconds=1.0)


def wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 180.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the app did not answer on {url} within {timeout:.0f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="passed to app.py --model (default: the bundled checkpoint)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up (default 5)")
    parser.add_argument("--clip", default=None, help="clip to upload (default: a generated 1 s, 200 fps, 640x480 clip)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    shared = REPO.parent / "shared" / "assets" / "face_landmarker.task"
    if shared.is_file():
        os.environ.setdefault("MIE_FACE_LANDMARKER", str(shared))

    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory(prefix="mie-bench-app-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        clip = Path(args.clip) if args.clip else make_clip(tmp / "one_second_200fps.webm")
        import cv2

        cap = cv2.VideoCapture(str(clip))
        frames, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        cap.release()
        print(f"clip: {clip.name}, {frames} frames at {fps:g} fps, {size[0]}x{size[1]}, "
              f"{clip.stat().st_size / 1e6:.1f} MB (made in {time.perf_counter() - started:.1f} s)")

        port = free_port()
        command = [sys.executable, str(REPO / "app.py"), "--port", str(port)]
        if args.model:
            command += ["--model", args.model]
        log_path = tmp / "app.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_until_up(url, process, log_path)
            client = Client(url, verbose=False, download_files=False)
            print(f"app up: {' '.join(command[1:])}; {load()}")
            times = []
            for run in range(args.runs + 1):
                t0 = time.perf_counter()
                out = client.predict(handle_file(str(clip)), api_name="/predict")
                elapsed = time.perf_counter() - t0
                label = out[0]["label"]
                print(f"{'warm-up' if run == 0 else f'run {run}'}: {elapsed:.3f} s ({label})")
                if run:
                    times.append(elapsed)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        stages = [m.groupdict() for m in STAGE_LINE.finditer(log_path.read_text())][1:]  # without the warm-up
        if stages:
            medians = {k: statistics.median(float(s[k]) for s in stages) for k in stages[0]}
            server = medians.pop("total")
            parts = ", ".join(f"{k} {v:.3f}" for k, v in medians.items())
            overhead = statistics.median(times) - server
            print(f"server side (median): {server:.3f} s = {parts}; Gradio + transfer {overhead:.3f} s")
    median = statistics.median(times)
    verdict = "within" if median < TARGET_S else "OVER"
    print(f"median of {len(times)} runs: {median:.3f} s ({verdict} the {TARGET_S:g} s target); {load()}")
    print(f"end_to_end_s={median:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
