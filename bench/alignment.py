"""Benchmark: how well alignment undoes a KNOWN head motion, and what it leaves of the expression.

Renders CASME II-like synthetic clips (640 x 480, faces about 250 px) of the head-motion plan
(`python -m modeling_mie.synthetic --head-motion`: in-plane rotation up to 10 deg, translation up
to 30 px per 300 px of face, scale up to 8 %) three ways from the same plan: the head moving
while the action units play, the head still (the truth of the expression), and the head moving
without any expression. Each goes through the fast preset's processor with `align` on and off.
Per clip it prints:

- rigid_err_px: the largest distance, over frames and rigid points (eye corners, nose bridge and
  tip), between where the processor's transform and the known motion put the reference's points;
- head_energy_ratio: energy of the onset differences (each crop minus the first) inside the six
  boxes of the clip whose head only moves, without alignment over with it (the issue asks >= 10);
- au_energy_ratio, au_corr: the aligned moving clip's onset differences against the still
  clip's (1 and 1 would be the expression kept exactly);

then the medians and extremes, and writes a picture: for the clip that moves most, the apex
frame with the fixed boxes as cut without and with alignment, and the onset differences of the
six crops (what the region CNNs read) without alignment, with it, and on the still head.

Usage: python bench/alignment.py [--clips 12] [--noise] [--picture docs/images/alignment.png]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MIE_FACE_LANDMARKER", str(REPO.parent / "shared" / "assets" / "face_landmarker.task"))


def onset_differences(out, sizes) -> np.ndarray:
    """(frames, regions, h, w) float: grey crops minus the first frame's, each region's own pixels."""
    crops = out["pixel_values"][0, :, :, 0].astype(np.float32)
    diff = crops - crops[:1]
    keep = np.zeros(diff.shape[1:], bool)
    for r, (h, w) in enumerate(sizes):
        keep[r, :h, :w] = True
    return diff * keep


def rigid_error(out, truth: np.ndarray) -> float:
    from modeling_mie.tracking import apply_affine, rigid_points

    rigid = rigid_points(out["landmarks"][0].astype(np.float64))
    worst = 0.0
    for t, position in enumerate(out["frame_positions"][0].astype(int)):
        moved = apply_affine(truth[position], rigid - 0.5) + 0.5  # the truth works in pixel centres
        back = apply_affine(out["alignment_transform"][0, t].astype(np.float64), moved)
        worst = max(worst, float(np.linalg.norm(back - rigid, axis=1).max()))
    return worst


def mosaic(diff: np.ndarray, sizes, gain: float = 6.0) -> np.ndarray:
    """The six regions' |difference| at one frame, side by side in two rows, colour-mapped."""
    import cv2

    tiles = []
    for r, (h, w) in enumerate(sizes):
        tile = np.clip(np.abs(diff[r, :h, :w]) * gain, 0, 255).astype(np.uint8)
        tile = cv2.resize(tile, (w * 2, h * 2), interpolation=cv2.INTER_NEAREST)
        tiles.append(cv2.applyColorMap(tile, cv2.COLORMAP_INFERNO)[:, :, ::-1])
    height = max(t.shape[0] for t in tiles)
    rows = []
    for row in (tiles[:3], tiles[3:]):
        padded = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0))) for t in row]
        rows.append(np.hstack(padded))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.vstack(rows)


def face_with_boxes(frame: np.ndarray, boxes: np.ndarray, transform: np.ndarray | None) -> np.ndarray:
    """The face around the boxes; with `transform` (frame -> reference) the frame is aligned first."""
    import cv2

    from modeling_mie.tracking import to_pixel_centres
    from modeling_mie.visualize import draw_regions

    if transform is not None:
        frame = cv2.warpAffine(frame, to_pixel_centres(transform), frame.shape[1::-1], flags=cv2.INTER_LINEAR)
    drawn = draw_regions(frame, boxes, [""] * len(boxes))
    x0, y0 = boxes[:, :2].min(axis=0) - 30
    x1, y1 = boxes[:, 2:].max(axis=0) + 30
    return cv2.resize(drawn[max(y0, 0) : y1, max(x0, 0) : x1], (300, 330), interpolation=cv2.INTER_AREA)


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    band = np.full((26, image.shape[1], 3), 24, np.uint8)
    cv2.putText(band, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([band, image])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--noise", action="store_true", help="render with every nuisance (noise, flicker, blinks, drift)")
    parser.add_argument("--picture", default=None, help="write the before/after picture here (PNG)")
    args = parser.parse_args()

    import cv2

    from modeling_mie import MieConfig, MieProcessor
    from modeling_mie.synthetic import load_base_faces
    from modeling_mie.synthetic_faces import head_motion_course, render_synthetic_clip
    from modeling_mie.synthetic_plan import plan_synthetic_dataset

    plan = plan_synthetic_dataset("megc2019", 0, head_motion=True)
    faces = load_base_faces()
    clips = [c for c in plan.clips if c.database == "casme2" and c.label is not None]
    # the strongest motions first: rotation, translation and scale each in degrees-equivalent
    clips.sort(key=lambda c: -(abs(c.head_motion[0][0]) / 10 + math.hypot(c.head_motion[1][0], c.head_motion[2][0]) / 25 + abs(c.head_motion[3][0]) / 0.08))
    clips = clips[: args.clips]
    aligned = MieProcessor.from_config(MieConfig.from_preset("fast"))
    fixed = MieProcessor.from_config(MieConfig.from_preset("fast", align=False))
    sizes = aligned.region_crop_sizes
    rows, picture = [], None
    print(f"{'clip':24s} {'rot':>6s} {'shift':>6s} {'scale':>6s} {'rigid_err_px':>12s} {'head_energy_ratio':>17s} {'au_energy_ratio':>15s} {'au_corr':>7s}")
    for clip in clips:
        moving, d = render_synthetic_clip(plan, clip, faces, nuisances=args.noise)
        still, _ = render_synthetic_clip(plan, clip, faces, nuisances=args.noise, head_motion=False)
        head_only, _ = render_synthetic_clip(plan, clip, faces, nuisances=args.noise, expression=False)
        truth = head_motion_course(clip, np.round(d, 2))
        out = aligned(moving, do_rescale=False)
        error = rigid_error(out, truth)
        head_fixed = (onset_differences(fixed(head_only, do_rescale=False), sizes) ** 2).sum()
        head_aligned = (onset_differences(aligned(head_only, do_rescale=False), sizes) ** 2).sum()
        seen = onset_differences(out, sizes)
        expected = onset_differences(aligned(still, do_rescale=False), sizes)
        au_ratio = float((seen**2).sum() / (expected**2).sum())
        au_corr = float(np.corrcoef(seen.ravel(), expected.ravel())[0, 1])
        rotation, tx, ty, scale = (p[0] for p in clip.head_motion)
        row = (error, head_fixed / head_aligned, au_ratio, au_corr)
        rows.append(row)
        print(
            f"{clip.key:24s} {rotation:6.1f} {math.hypot(tx, ty):6.1f} {scale:6.3f} {error:12.3f} "
            f"{row[1]:17.1f} {au_ratio:15.2f} {au_corr:7.3f}"
        )
        if picture is None and args.picture:
            apex = clip.apex_index
            unaligned = fixed(moving, do_rescale=False)
            boxes = out["region_boxes"][0]
            panels_top = [
                labelled(face_with_boxes(moving[apex], boxes, None), "apex, fixed boxes (no alignment)"),
                labelled(face_with_boxes(moving[apex], boxes, out["alignment_transform"][0, apex].astype(np.float64)), "apex, aligned"),
                labelled(face_with_boxes(still[apex], boxes, None), "apex, head still (truth)"),
            ]
            panels_bottom = [
                labelled(mosaic(onset_differences(unaligned, sizes)[apex], sizes), "|apex - onset|, no alignment"),
                labelled(mosaic(seen[apex], sizes), "|apex - onset|, aligned"),
                labelled(mosaic(expected[apex], sizes), "|apex - onset|, head still"),
            ]
            top = np.hstack([np.pad(p, ((0, 0), (0, 8), (0, 0))) for p in panels_top])
            bottom = np.hstack([np.pad(p, ((0, 0), (0, 8), (0, 0))) for p in panels_bottom])
            width = max(top.shape[1], bottom.shape[1])
            top = np.pad(top, ((0, 8), (0, width - top.shape[1]), (0, 0)))
            bottom = np.pad(bottom, ((0, 0), (0, width - bottom.shape[1]), (0, 0)))
            title = (
                f"{clip.key}: head rotated up to {abs(rotation):.1f} deg, shifted {math.hypot(tx, ty):.0f} px, "
                f"scaled {abs(scale) * 100:.1f} %; AUs {clip.au_string}; differences x6"
            )
            picture = labelled(np.vstack([top, bottom]), title)
    aligned.close()
    rows = np.array(rows)
    print(
        f"rigid_err_px median={np.median(rows[:, 0]):.3f} max={rows[:, 0].max():.3f}; "
        f"head_energy_ratio median={np.median(rows[:, 1]):.0f} min={rows[:, 1].min():.0f}; "
        f"au_energy_ratio median={np.median(rows[:, 2]):.2f} range={rows[:, 2].min():.2f}-{rows[:, 2].max():.2f}; "
        f"au_corr median={np.median(rows[:, 3]):.3f} min={rows[:, 3].min():.3f}"
    )
    if picture is not None:
        path = Path(args.picture)
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), picture[:, :, ::-1])
        print(f"picture: {path}")


if __name__ == "__main__":
    main()
