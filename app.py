"""python app.py: the mie demo in the browser: upload a face clip, see its class and where the evidence is."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from modeling_mie import MieInputError  # noqa: E402
from modeling_mie.app_support import (  # noqa: E402
    MODEL_ENV,
    NO_FACE_SERIES,
    SPOTTED_SERIES,
    UNCERTAIN_BELOW,
    AppLimits,
    MieDemo,
    pretty_region,
    resolve_model,
)
from modeling_mie.visualize import REGION_COLORS  # noqa: E402

logger = logging.getLogger("mie.app")

REPO = Path(__file__).resolve().parent
DEFAULT_MODEL = REPO / "checkpoints" / "mie-synthetic-megc2019"
EXAMPLES_DIR = REPO / "examples"

TITLE = "mie: facial micro-expression recognition"
TAGLINE = (
    "Upload a short video of one face. A region CNN + LSTM (Aouayeb et al., 2019) says whether it shows a "
    "**negative**, **positive** or **surprise** micro-expression, and where on the face the evidence was."
)
HELP = """
**Micro-expressions** are brief, involuntary facial movements, usually under half a second, that can
betray an emotion a person is hiding. This model sorts one into the three classes of the MEGC 2019
challenge: negative, positive, surprise.

**How it reads a clip.** The face is followed through the clip: the analysis starts at the first
frame with a usable face, and frames where it is lost, turned away or covered are skipped. Six
regions (both eyes with their brows, the nose, both cheeks, the mouth) are fixed on that first
frame; where the model aligns faces, every frame is first mapped onto it so that head motion does
not count as movement. A small CNN per region and an LSTM over time read the regions (the
pixels, or with a motion model the optical flow from the first frame).

**What the answer means.** The probabilities are calibrated: of the answers given at 80 %, about
80 % are right on held-out subjects of the training data. When no class reaches 60 % the app says
*uncertain*. A motion model also knows how far the faces it learned from moved; a clip that moves
far more (a broad smile, a laugh) is called a *large movement*, most likely a macro-expression,
which the model was not made for.

**What the pictures mean.**
*Regions*: each box is coloured by its share of the evidence for the answer (bright = much, dark = little).
*Heatmaps*: inside each region, where the model looked (Grad-CAM) at the moment that region moved
most; red is strong, blue is none, and a region with a small share stays blue. With a motion
model the picture under it is the flow: the colour is the direction, white is no movement.
*Activity*: how far each region moved away from its look in the first frame, over time; grey boxes
mark stretches without a usable face, which the model did not read.
"""
CSS = """
#mie-summary p { font-size: 1.05rem; }
#mie-provenance p { font-size: 0.85rem; opacity: 0.85; }
"""


def _for_visitor(call, doing: str, what: str):
    """`call()`, with a user's mistake (`MieInputError`) shown as its message and a bug as a generic
    message (the stack trace goes to the server log, never to the visitor)."""
    try:
        return call()
    except MieInputError as err:
        logger.info("refused a %s: %s", what, err)
        raise gr.Error(str(err), title=f"This {what} cannot be analysed", print_exception=False) from None
    except Exception:  # noqa: BLE001 - a bug must not show a stack trace to the visitor
        logger.exception("%s a %s failed", doing, what)
        raise gr.Error(
            f"Something went wrong inside the app while {doing} this {what} (details are in the server "
            f"log). Try another {what}; if it keeps happening, report it together with the {what}.",
            title="Internal error",
            print_exception=False,
        ) from None


def _summary_text(result) -> str:
    """A clip's (or interval's) answer, its face track and its notes, as Markdown."""
    return result.summary + f"\n\n{result.face}" + "".join(f"\n\n*{note}*" for note in result.notes)


def build_demo(
    mie: MieDemo, examples_dir: Path = EXAMPLES_DIR, queue_size: int = 16, concurrency: int = 2
) -> gr.Blocks:
    """The Blocks of the app around a loaded `MieDemo`, with its queue configured (not launched)."""
    limits = mie.limits

    def predict(video):
        """Classify one clip: (probabilities, summary, regions picture, heatmaps, activity, provenance)."""
        result = _for_visitor(lambda: mie.predict(video), "analysing", "clip")
        summary = _summary_text(result)
        return (
            result.probabilities,
            summary,
            result.annotated_frame,
            result.heatmaps,
            pd.DataFrame(result.activity_columns()),
            result.provenance,
        )

    with gr.Blocks(title="mie micro-expression demo", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\n{TAGLINE}")
        if mie.synthetic:
            gr.Markdown(f"⚠️ **Demo model.** {mie.provenance}")
        with gr.Tabs():
            with gr.Tab("Clip", id="clip"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=320):
                        video = gr.Video(
                            label="Face clip (upload or webcam)",
                            sources=["upload", "webcam"],
                            height=300,
                        )
                        with gr.Row():
                            clear = gr.ClearButton(value="Clear")
                            analyse = gr.Button("Analyse clip", variant="primary")
                        gr.Markdown(
                            f"One face, well lit, looking at the camera. This demo takes {limits.describe()}; "
                            "longer clips are sampled evenly."
                        )
                        examples = sorted(Path(examples_dir).glob("*.webm")) if examples_dir else []
                        if examples:
                            gr.Examples(
                                examples=[[str(p)] for p in examples],
                                inputs=[video],
                                example_labels=[f"{p.stem} (synthetic)" for p in examples],
                                label="Examples: synthetic clips, one per class; click one, then Analyse",
                                cache_examples=False,
                            )
                        else:
                            logger.warning(
                                "No example clips in %s; make them with `python -m modeling_mie.examples`.", examples_dir
                            )
                        gr.Markdown(HELP)
                    with gr.Column(scale=3, min_width=420):
                        with gr.Row(equal_height=False):
                            with gr.Column(min_width=240):
                                probabilities = gr.Label(num_top_classes=3, label="Class probabilities")
                                summary = gr.Markdown(
                                    "*The answer appears here after you press Analyse.*",
                                    label="Summary",
                                    elem_id="mie-summary",
                                )
                            regions = gr.Image(
                                label="Regions" if mie.onnx else "Regions: share of the evidence",
                                type="numpy",
                                height=340,
                                min_width=240,
                                buttons=["download"],
                            )
                        heatmaps = gr.Gallery(
                            label="Heatmaps: where in each region the evidence is, when it moved most (Grad-CAM)"
                            + (" (not with ONNX Runtime: they need the PyTorch model)" if mie.onnx else ""),
                            columns=3,
                            height="auto",
                            object_fit="contain",
                        )
                        # one fixed colour per region (as on the face picture), grey for the face-less stretches
                        names = [pretty_region(n) for n in mie.model.config.region_names]
                        colors = {n: "#%02x%02x%02x" % REGION_COLORS[i % len(REGION_COLORS)] for i, n in enumerate(names)}
                        activity = gr.LinePlot(
                            x="time (s)",
                            y="activity",
                            color="region",
                            color_map={**colors, NO_FACE_SERIES: "#9a9a9a"},
                            # the block's label would push the chart's own legend out of its fixed-height box
                            # (Gradio 6.31 clips it): the title goes inside the chart instead
                            title="Activity: how far each region moved from the first frame",
                            label="Activity over time",
                            show_label=False,
                            y_lim=[0, 1],
                            height=280,
                        )
                        provenance = gr.Markdown("", label="Provenance", elem_id="mie-provenance")
                outputs = [probabilities, summary, regions, heatmaps, activity, provenance]
                clear.add([video, probabilities, regions, heatmaps, activity])
                analyse.click(predict, inputs=video, outputs=outputs, api_name="predict")
            with gr.Tab("Long video", id="long"):
                _long_video_tab(mie, colors)
            with gr.Tab("Live webcam", id="live"):
                _live_tab(mie, colors)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo


LONG_HELP = """
**Spot, then recognise.** A long recording (an interview, a call) holds a few brief expressions
among minutes of stillness, talk and blinks. The face is followed through the whole video; every
region's displacement from its rest position is measured by optical flow against a sliding
reference (head motion in the image plane is removed first, blinks and the eye openings are left
out), and the stretches where a region moves clearly above the face's own stillness become
intervals: **micro** when they last at most 0.5 s, **macro** otherwise. Each interval is then
classified by the model, as a clip would be. A head that turns away, or a face that is lost, ends
an interval rather than making one.

*Timeline*: each region's displacement from rest (canvas pixels; the face is 240 px wide), with the
spotted intervals as boxes. Choose a row of the table to see that interval's class, regions and heatmaps.
"""


def _long_video_tab(mie: MieDemo, colors: dict) -> None:
    """The long-video tab: upload, spot, a timeline and a table of intervals; a chosen interval is
    classified and explained like a clip."""
    limits = mie.limits
    spotted_colors = {SPOTTED_SERIES["micro"]: "#d62728", SPOTTED_SERIES["macro"]: "#7f7f7f"}

    def spot(video, progress=gr.Progress()):
        """Spot the expressions of a long video: (summary, intervals table, timeline, state)."""
        def on_frame(done, total):
            if total:
                progress((done, total), desc="Following the face and reading motion", unit="frames")

        result = _for_visitor(lambda: mie.spot(video, on_frame=on_frame), "spotting", "video")
        return result.summary, result.table(), pd.DataFrame(result.timeline), result

    def choose(spotted, evt: gr.SelectData):
        """The interval of the chosen table row, classified and explained."""
        if spotted is None or evt is None or evt.index is None:
            raise gr.Error("Spot a video first, then choose an interval in the table.", print_exception=False)
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else int(evt.index)
        return show(spotted, row + 1)

    def show(spotted, number):
        """Interval `number` (1-based) of the spotted video: (probabilities, summary, regions, heatmaps)."""
        if spotted is None:
            raise gr.Error("Spot a video first, then choose an interval.", print_exception=False)
        result = _for_visitor(lambda: mie.predict_interval(spotted, int(number) - 1), "analysing", "interval")
        summary = _summary_text(result)
        return result.probabilities, summary, result.annotated_frame, result.heatmaps

    state = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            video = gr.Video(label="Long video of one face (upload)", sources=["upload"], height=300)
            run = gr.Button("Spot expressions", variant="primary")
            gr.Markdown(f"This demo takes {limits.describe_long()}; spotting takes about a third of the video's length.")
            gr.Markdown(LONG_HELP)
        with gr.Column(scale=3, min_width=420):
            summary = gr.Markdown("*The spotted intervals appear here after you press Spot.*", elem_id="mie-long-summary")
            timeline = gr.LinePlot(
                x="time (s)",
                y="motion (px)",
                color="region",
                color_map={**colors, **spotted_colors, NO_FACE_SERIES: "#9a9a9a"},
                title="Timeline: each region's displacement from rest, and the spotted intervals",
                show_label=False,
                height=300,
            )
            table = gr.Dataframe(
                headers=["#", "start (s)", "end (s)", "kind", "class", "probability", "score", "region"],
                label="Spotted intervals: choose one",
                interactive=False,
                elem_id="mie-intervals",
            )
            with gr.Row():
                number = gr.Number(label="Interval #", value=1, precision=0, minimum=1, scale=1)
                show_button = gr.Button("Show interval", scale=1)
            with gr.Row(equal_height=False):
                with gr.Column(min_width=240):
                    probabilities = gr.Label(num_top_classes=3, label="Class probabilities of the interval")
                    interval_summary = gr.Markdown("", elem_id="mie-interval-summary")
                regions = gr.Image(label="Regions: share of the evidence", type="numpy", height=300, min_width=240)
            heatmaps = gr.Gallery(label="Heatmaps of the interval", columns=3, height="auto", object_fit="contain")
    outputs = [probabilities, interval_summary, regions, heatmaps]
    run.click(spot, inputs=video, outputs=[summary, table, timeline, state], api_name="spot")
    table.select(choose, inputs=state, outputs=outputs, api_visibility="private")
    show_button.click(show, inputs=[state, number], outputs=outputs, api_name="interval")


LIVE_FPS = 10.0  # frames a second the webcam stream is asked for (stream_every = 1 / LIVE_FPS)
LIVE_HELP = """
**Live.** Start the webcam: the face is followed frame by frame and spotted as in the Long video
tab, over the last minute. An interval is listed a few seconds after it ends (the sliding
reference needs the frames after it), with its class. The stream reaches the server at about
{fps:g} frames a second, so the shortest micro-expressions fall between frames: this is a demo of
the pipeline, not a measuring instrument. Each session runs for at most {minutes:g} minutes.
"""


def _live_tab(mie: MieDemo, colors: dict, time_limit: float = 600.0) -> None:
    """The live tab: the webcam streamed to the server, spotted as it comes."""
    import time as _time

    def step(frame, live):
        if frame is None:
            return gr.skip(), gr.skip(), gr.skip(), live
        if live is None:
            live = mie.live_session(LIVE_FPS)
        # The mirrored webcam view mirrors the frames it sends as well (tests/test_browser.py checks
        # it against the camera's file): undo it, so that the left eye is the left_eye region.
        frame = np.ascontiguousarray(frame[:, ::-1])
        try:
            live.push(frame, _time.monotonic())
        except MieInputError as err:
            return str(err), gr.skip(), gr.skip(), live
        rows = [
            [i + 1, round(live.time_of(it.onset), 2), round(live.time_of(it.offset), 2), it.kind, it.label or "-",
             round(max(it.probabilities.values()), 3) if it.probabilities else None, pretty_region(it.region)]
            for i, it in enumerate(live.intervals)
        ]
        status = f"{live.status} {len(live.intervals)} interval(s) spotted."
        now = _time.monotonic()
        if now - getattr(live, "_plotted", 0.0) < 1.0:
            plot = gr.skip()
        else:
            live._plotted = now
            times, motion = live.recent(20.0)
            long = {"time (s)": [], "region": [], "motion (px)": []}
            for r, name in enumerate(live.processor.region_names):
                keep = np.isfinite(motion[:, r]) if len(motion) else []
                long["time (s)"] += times[keep].round(2).tolist()
                long["region"] += [pretty_region(name)] * int(np.sum(keep))
                long["motion (px)"] += motion[keep, r].round(3).tolist()
            plot = pd.DataFrame(long)
        table = pd.DataFrame(rows, columns=["#", "start (s)", "end (s)", "kind", "class", "probability", "region"])
        return status, table, plot, live

    def finish(live):
        if live is not None:
            live.close()
        return None

    state = gr.State(None, delete_callback=lambda live: live.close() if live is not None else None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            webcam = gr.Image(
                label="Webcam", sources=["webcam"], streaming=True, type="numpy", height=300,
                webcam_options=gr.WebcamOptions(mirror=True),
            )
            gr.Markdown(LIVE_HELP.format(fps=LIVE_FPS, minutes=time_limit / 60))
        with gr.Column(scale=3, min_width=420):
            status = gr.Markdown("*Start the webcam to spot expressions as they happen.*", elem_id="mie-live-status")
            plot = gr.LinePlot(
                x="time (s)", y="motion (px)", color="region", color_map=colors, show_label=False, height=260,
                title="Last 20 s: each region's displacement from rest (final a few seconds after)",
            )
            table = gr.Dataframe(
                headers=["#", "start (s)", "end (s)", "kind", "class", "probability", "region"],
                label="Spotted live", interactive=False, elem_id="mie-live-intervals",
            )
    webcam.stream(
        step, inputs=[webcam, state], outputs=[status, table, plot, state], stream_every=1.0 / LIVE_FPS,
        time_limit=time_limit, show_progress="hidden", api_visibility="private",
    )
    webcam.clear(finish, inputs=state, outputs=state, api_visibility="private")


def launch(demo: gr.Blocks, limits: AppLimits, host: str = "127.0.0.1", port: int = 7860, **kwargs):
    """Start the server: uploads over the larger of the two tabs' limits are refused by Gradio before
    they arrive (each tab then checks its own)."""
    return demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=kwargs.pop("max_file_size", limits.upload_bytes),
        ssr_mode=False,  # server-side rendering needs Node.js; the client-side app is the same
        theme=gr.themes.Soft(),
        css=CSS,
        **kwargs,
    )


def _display_name(model: str) -> str:
    """The model as the provenance line shows it: a folder inside the repository relative to it
    (visitors need not see the server's paths), anything else as given."""
    if not Path(model).is_dir():
        return model
    try:
        return str(Path(model).resolve().relative_to(REPO))
    except ValueError:
        return model


def parse_args(argv=None) -> argparse.Namespace:
    defaults = AppLimits()
    parser = argparse.ArgumentParser(description=__doc__.split(": ", 1)[-1])
    parser.add_argument(
        "--model",
        default=None,
        help=f"model folder or Hub repo id (default: ${MODEL_ENV}, else the bundled {DEFAULT_MODEL.relative_to(REPO)})",
    )
    parser.add_argument(
        "--onnx",
        default=None,
        metavar="FILE.onnx",
        help="run the model with ONNX Runtime from a file written by `python -m modeling_mie.export` (it carries "
        "its settings; --model is then not used). Shows the answer, the face and the activity; the regions' "
        "shares and the Grad-CAM heatmaps need the PyTorch model",
    )
    parser.add_argument(
        "--onnx-threads", type=int, default=None,
        help="ONNX Runtime threads (default: one per physical core)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument(
        "--max-file-mb", type=float, default=defaults.max_file_mb,
        help=f"largest upload in MB (default {defaults.max_file_mb:g})",
    )
    parser.add_argument(
        "--max-duration", type=float, default=defaults.max_duration_s,
        help=f"longest clip in seconds (default {defaults.max_duration_s:g}); longer clips are refused",
    )
    parser.add_argument(
        "--model-frames", type=int, default=None,
        help="frames per clip given to the model, evenly spaced (default: as the checkpoint was trained)",
    )
    parser.add_argument(
        "--uncertain-below", type=float, default=UNCERTAIN_BELOW,
        help=f"answer 'uncertain' when no class reaches this probability (default {UNCERTAIN_BELOW:g})",
    )
    parser.add_argument("--queue-size", type=int, default=16, help="requests waiting at most (default 16)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests processed at once (default 2)")
    return parser.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = args.onnx or resolve_model(args.model, DEFAULT_MODEL)
    try:
        limits = AppLimits(
            max_file_mb=args.max_file_mb, max_duration_s=args.max_duration, model_frames=args.model_frames
        )
        mie = MieDemo(
            model, limits, display_name=Path(model).name if args.onnx else _display_name(model), onnx=args.onnx,
            onnx_threads=args.onnx_threads, uncertain_below=args.uncertain_below,
        )
    except (MieInputError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    runtime = "ONNX Runtime, no heatmaps" if args.onnx else "PyTorch"
    print(f"mie demo: model {model} ({runtime}; {'synthetic' if mie.synthetic else 'see its model card'}); "
          f"{limits.describe()}")
    # `docker stop` / systemd send SIGTERM: shut down as on Ctrl-C (Gradio closes the server on
    # KeyboardInterrupt), so the landmarker is closed below instead of the process just dying
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        launch(build_demo(mie, queue_size=args.queue_size, concurrency=args.concurrency), limits, args.host, args.port)
    finally:
        mie.close()  # MediaPipe's landmarker, closed before interpreter teardown
    return 0


if __name__ == "__main__":
    sys.exit(main())
