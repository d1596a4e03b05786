"""The examples in the README and the docs run, and say what they show."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

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
