"""docs/ui.md stays true: its screenshots exist and are referenced, its URLs and queries are
the ones ``incident ui`` builds, and the script that takes the screenshots still runs."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from domain.models import Phase, Severity
from starters.cli.ui import incidents_query, list_url

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "ui.md"
IMAGES = ROOT / "docs" / "img"
SCRIPT = ROOT / "scripts" / "ui_screenshots.py"


def guide() -> str:
    return GUIDE.read_text()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_every_image_is_referenced_and_every_reference_exists() -> None:
    referenced = set(re.findall(r"!\[[^\]]+\]\(img/([^)]+)\)", guide()))
    on_disk = {path.name for path in IMAGES.iterdir() if path.is_file()}
    assert on_disk, "docs/img holds the screenshots"
    assert on_disk <= referenced, f"not shown in docs/ui.md: {sorted(on_disk - referenced)}"
    assert referenced <= on_disk, f"missing from docs/img: {sorted(referenced - on_disk)}"
    for name in on_disk:
        assert png_size(IMAGES / name) == (1400, 900), name


def test_the_readme_links_the_guide() -> None:
    assert "(docs/ui.md)" in (ROOT / "README.md").read_text()


def test_the_ready_made_urls_are_the_cli_s() -> None:
    text = guide()
    base = "http://localhost:8233"
    for severities in ((), (Severity.P0, Severity.P1)):
        url = list_url(base, "default", incidents_query(severities=severities))
        assert f"<{url}>" in text
    for query in (
        incidents_query(),
        incidents_query(phases=[Phase.RESOLVE]),
        incidents_query(phases=[Phase.FIX]),
    ):
        assert f"`{query}`" in text


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="needs Chromium (scripts/ensure-test-peers.sh installs it)",
)
def test_the_screenshot_script_still_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written = re.findall(r"^ok (\S+\.png) \((\d+) bytes\)$", done.stdout, re.MULTILINE)
    assert sorted(name for name, _ in written) == sorted(p.name for p in IMAGES.glob("ui-*.png"))
    assert all(int(size) > 20_000 for _, size in written), done.stdout
