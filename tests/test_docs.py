"""The examples in the README and the docs run, and say what they show."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .readme_examples import python_blocks

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.rst", *(ROOT / "docs").glob("*.rst")])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_on_each_page_run(page: Path) -> None:
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        raise_on_error=False,
        report=True,
        verbose=False,
    )
    assert result.failed == 0, f"{result.failed} of the examples in {page.name} failed (see above)"


def test_there_are_examples_to_run() -> None:
    examples = sum(len(doctest.DocTestParser().get_examples(page.read_text("utf-8"))) for page in PAGES)
    assert examples >= 20


def test_every_python_block_of_the_readme_runs_as_written(tmp_path: Path) -> None:
    # In a process of its own: it points every provider at a scripted
    # server through the environment, and configures Django.
    done = subprocess.run(
        [sys.executable, "-m", "tests.readme_examples", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    text = (ROOT / "README.rst").read_text("utf-8")
    assert report["blocks"] == len(python_blocks(text)) == text.count(".. code-block:: python") >= 9
    assert report["requests"].count("POST /chat/completions") >= 8 and "GET /models" in report["requests"]
