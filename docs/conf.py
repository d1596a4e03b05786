"""Sphinx configuration for minillm's documentation."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from minillm import __version__

project = "minillm"
author = "The minillm authors"
copyright = "2026, The minillm authors"  # noqa: A001 - Sphinx's name
version = release = __version__

# No intersphinx: the docs must build offline.
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False

html_theme = "alabaster"
html_static_path: list[str] = []
exclude_patterns = ["_build"]
