"""scripts/ensure-chromium, the first step of `make test`, as a newcomer meets it: a machine without
Chromium gets one line saying what to install, root on Debian gets the package."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "ensure-chromium"
LINE = "make test needs Chromium for the browser tests and found none"


def ensure(path_dir: Path, **env) -> subprocess.CompletedProcess:
    # /bin/bash by absolute path and a PATH with nothing but `path_dir`: no chromium, no apt-get
    return subprocess.run(["/bin/bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
                          env={"PATH": str(path_dir), **env})


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def debian_root() -> bool:
    release = Path("/etc/os-release")
    text = release.read_text() if release.is_file() else ""
    return os.geteuid() == 0 and ("ID=debian" in text or "ubuntu" in text.lower())


def test_without_chromium_one_line_says_what_to_install(tmp_path):
    for env, reason in [({"MIE_CHROMIUM_INSTALL": "0"}, "MIE_CHROMIUM_INSTALL=0"), ({}, None)]:
        proc = ensure(tmp_path, **env)
        assert proc.returncode == 1 and proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(LINE), proc.stderr
        assert "sudo apt-get install" in lines[0] and "MIE_CHROMIUM=/path/to/chrome" in lines[0]
        if reason:
            assert reason in lines[0]


def test_root_on_debian_installs_it_and_others_are_told(tmp_path):
    log = tmp_path / "apt.log"
    # a stand-in apt-get that records its arguments and "installs" a chromium beside itself
    executable(tmp_path / "apt-get",
               f'#!/bin/bash\necho "$@" >> {log}\n'
               f'if [ "$1" = install ]; then printf "#!/bin/bash\\n" > {tmp_path}/chromium; /bin/chmod +x {tmp_path}/chromium; fi\n')
    proc = ensure(tmp_path)
    if debian_root():
        assert proc.returncode == 0, proc.stderr
        assert log.read_text().splitlines() == ["update -qq", "install -y -qq --no-install-recommends chromium"]
        assert (tmp_path / "chromium").is_file()
    else:
        assert proc.returncode == 1 and not log.exists()
        assert proc.stderr.startswith(LINE) and "so not installing it" in proc.stderr


def test_mie_chromium_points_at_another_browser(tmp_path):
    chrome = executable(tmp_path / "chrome", "#!/bin/bash\n")
    assert ensure(tmp_path / "empty", MIE_CHROMIUM=str(chrome)).returncode == 0
    proc = ensure(tmp_path / "empty", MIE_CHROMIUM=str(tmp_path / "none"))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "MIE_CHROMIUM=" in proc.stderr
