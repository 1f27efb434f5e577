"""Sphinx configuration of the provider's documentation site (built by ``scripts/docs``)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]

from airflow_provider_musicai import __version__  # noqa: E402

project = "airflow-provider-musicai"
author = "airflow-provider-musicai developers"
copyright = "the airflow-provider-musicai developers"
release = version = __version__

extensions = [
    "myst_parser",
    "autoapi.extension",
    "sphinx.ext.napoleon",
    "musicai_docs",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3

# The Python API reference, read from the source (Sphinx never imports Airflow).
autoapi_dirs = [str(ROOT / "airflow_provider_musicai")]
autoapi_root = "_api"
autoapi_keep_files = False
autoapi_add_toctree_entry = False
autoapi_options = ["members", "undoc-members", "show-inheritance", "show-module-summary"]
# The emulator's internals are not API: only its control classes (EmulatorServer...) are.
# The emulator's documented surface is its package (usage) and control.py (EmulatorServer, the admin
# client); its internals (app, state, storage, clock, tls...) are left out, whatever modules it gains.
_EMULATOR = ROOT / "airflow_provider_musicai" / "testing" / "emulator"
autoapi_ignore = [
    f"*/testing/emulator/{module.name}"
    for module in sorted(_EMULATOR.glob("*.py"))
    if module.stem not in {"__init__", "control"}
]
autoapi_member_order = "groupwise"
autodoc_typehints = "description"

# Every cross-reference inside this package must resolve; names of other packages (Airflow, the
# standard library, requests...) are not linked, so the build needs no network.
nitpicky = True
# Private modules (a leading underscore) are not documented either, so links to them are not made.
nitpick_ignore_regex = [
    (r"py:.*", r"^(?!airflow_provider_musicai\b).*"),
    (r"py:.*", r"^airflow_provider_musicai(\.\w+)*\._\w+.*"),
]

html_theme = "furo"
html_title = f"airflow-provider-musicai {release}"
# Where the site is published: the package's Documentation URL (Airflow links the provider's name to it).
html_baseurl = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Documentation"]
html_static_path: list[str] = []
