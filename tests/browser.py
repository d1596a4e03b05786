"""A real browser for the tests: Debian's headless Chromium, driven from the
command line (``--screenshot`` and ``--dump-dom`` in one run), and a PNG
reader (stdlib only) to look at what it drew."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import List, Optional, Tuple

import attrs

#: Browsers looked for, in order (``MINILLM_BROWSER`` names another).
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome")
#: A console message on stderr (``--enable-logging=stderr``): the format of
#: recent builds (``CONSOLE:1``) and of older ones (``CONSOLE(1)``).
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] \"(.*)\", source: ")


def find_browser() -> Optional[str]:
    given = os.environ.get("MINILLM_BROWSER")
    if given:
        return shutil.which(given)
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


@attrs.frozen
class Rendered:
    png: bytes
    dom: str
    console: List[str]


def render(browser: str, page: Path, work: Path, width: int = 900, height: int = 1800) -> Rendered:
    """Load ``page`` in ``browser`` once: its screenshot, its DOM as the
    browser built it, and any console messages it logged."""
    shot = work / "screenshot.png"
    command = [
        browser,
        "--headless",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--screenshot={shot}",
        "--dump-dom",
        f"--user-data-dir={work / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--timeout=20000",
        page.resolve().as_uri(),
    ]
    if os.geteuid() == 0:  # Chromium refuses to run as root with its sandbox
        command.insert(1, "--no-sandbox")
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert shot.exists(), f"{browser} wrote no screenshot: {done.stderr}"
    console = [match.group(1) for match in CONSOLE.finditer(done.stderr)]
    return Rendered(png=shot.read_bytes(), dom=done.stdout, console=console)


def png_pixels(data: bytes) -> Tuple[int, int, List[List[Tuple[int, int, int]]]]:
    """A PNG's width, height and RGB rows (8-bit RGB or RGBA, not interlaced:
    what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, chunks, header = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    step = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * step
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - step] if x >= step else 0
            up = previous[x]
            corner = previous[x - step] if x >= step else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))
                line[x] = (line[x] + near[2]) & 0xFF
        rows.append([tuple(line[x : x + 3]) for x in range(0, stride, step)])
        previous = line
    return width, height, rows  # type: ignore[return-value]


def browser_or_skip() -> str:
    """The browser to render with; without one the test is skipped, saying
    why -- or fails, where ``MINILLM_REQUIRE_BROWSER`` is set (as in CI)."""
    import pytest

    found = find_browser()
    if found is not None:
        return found
    message = (
        f"no headless Chromium to render the report in (looked for {', '.join(BROWSERS)}; "
        "set MINILLM_BROWSER, or apt-get install chromium-headless-shell)"
    )
    if os.environ.get("MINILLM_REQUIRE_BROWSER"):
        pytest.fail(f"a browser is required here (MINILLM_REQUIRE_BROWSER is set): {message}", pytrace=False)
    pytest.skip(message)
    raise AssertionError("unreachable: skip raised")  # pragma: no cover
