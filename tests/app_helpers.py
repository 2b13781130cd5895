"""Helpers shared by the app's tests: load app.py as a module, find a free port."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_app(name: str = "mie_app"):
    """app.py as a module (it lives at the repository root, outside the package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
