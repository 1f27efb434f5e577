"""Sphinx directives that render the provider's own metadata, so the pages never drift from it.

* ``.. musicai-conn-fields::`` the connection's extra fields, from ``get_provider_info.CONN_FIELDS``.
* ``.. musicai-requirements::`` the supported Python and the runtime dependencies, from pyproject.toml.
* ``.. musicai-support-matrix::`` the support policy: what CI runs on each Airflow x Python, from
  .ci/matrix.toml (through scripts/_matrix.py, the table the README carries too).
* Markdown files included from outside ``docs/`` (RELIABILITY.md, benchmarks/RESULTS.md, CHANGELOG.md)
  keep their links to repository files working: those become links to the file on GitHub, except links
  to pages of the site (docs/*.md, docs/*.rst), which stay links to those pages.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY_FILES = "https://github.com/airflow-provider-musicai/airflow-provider-musicai/blob/main/"
# A Markdown link (not an image) whose target is a relative path: no scheme, no anchor, no root.
_RELATIVE_LINK = re.compile(r"(?<!!)(\[[^\]]*\])\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+)\)")


def _cell(text: str) -> str:
    """One table cell: a single line (an empty cell is a lone backslash)."""
    return " ".join(text.split()) or "\\"


def _plain(text: str) -> str:
    """Text from metadata, escaped so that RST markup characters in it show as typed."""
    return re.sub(r"([\\*`|_\[\]<>])", r"\\\1", text)


class _TableDirective(SphinxDirective):
    """Render a ``list-table`` built from metadata, parsed like hand-written RST."""

    header: tuple[str, ...] = ()

    def rows(self) -> list[tuple[str, ...]]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        lines = [".. list-table::", "   :header-rows: 1", ""]
        for row in [self.header, *self.rows()]:
            lines.append(f"   * - {_cell(row[0])}")
            lines.extend(f"     - {_cell(value)}" for value in row[1:])
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="musicai_docs"), self.content_offset, container)
        return list(container.children)


class ConnFieldsDirective(_TableDirective):
    """The connection extras, as the connection form shows them."""

    header = ("Extra", "Form label", "Type", "Default", "Meaning")

    def rows(self) -> list[tuple[str, ...]]:
        from airflow_provider_musicai.get_provider_info import CONN_FIELDS

        self.env.note_dependency(str(ROOT / "airflow_provider_musicai" / "get_provider_info.py"))
        rows = []
        for name, field in CONN_FIELDS.items():
            schema: dict[str, Any] = field.get("schema", {})
            kinds = schema.get("type", "")
            kind = " or ".join(k for k in ([kinds] if isinstance(kinds, str) else kinds) if k != "null")
            default = f"``{json.dumps(schema['default'])}``" if "default" in schema else ""
            description = _plain(field.get("description", ""))
            rows.append((f"``{name}``", _plain(field["label"]), kind, default, description))
        return rows


class RequirementsDirective(_TableDirective):
    """``requires-python`` and the runtime dependencies of the package."""

    header = ("Requirement", "Version")

    def rows(self) -> list[tuple[str, ...]]:
        pyproject = ROOT / "pyproject.toml"
        self.env.note_dependency(str(pyproject))
        project = tomllib.loads(pyproject.read_text())["project"]
        rows = [("Python", f"``{project['requires-python']}``")]
        for requirement in project["dependencies"]:
            name, _, rest = requirement.partition(">")
            rows.append((f"``{name.strip()}``", f"``>{rest}``" if rest else "any"))
        return rows


class SupportMatrixDirective(_TableDirective):
    """The support policy table of .ci/matrix.toml, as ``scripts/_matrix.py policy`` prints it."""

    def run(self) -> list[nodes.Node]:
        import importlib.util
        import sys

        self.env.note_dependency(str(ROOT / ".ci" / "matrix.toml"))
        spec = importlib.util.spec_from_file_location("_matrix", ROOT / "scripts" / "_matrix.py")
        assert spec is not None and spec.loader is not None
        matrix = importlib.util.module_from_spec(spec)
        sys.modules["_matrix"] = matrix  # dataclasses look their module up by name
        spec.loader.exec_module(matrix)
        lines = [line.strip("|").split("|") for line in matrix.policy().splitlines()]
        self.header = tuple(cell.strip() for cell in lines[0])
        self._rows = [tuple(cell.strip() for cell in line) for line in lines[2:]]
        return super().run()

    def rows(self) -> list[tuple[str, ...]]:
        return self._rows


def _link_repository_files(app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]) -> None:
    """Point relative links of a Markdown file included from outside docs/ at the file on GitHub.

    A link to a page of the site itself (a ``.md`` or ``.rst`` file under docs/) stays a link to that page.
    """
    srcdir = Path(app.srcdir).resolve()
    included = (srcdir / relative_path).resolve()
    if included.suffix != ".md" or srcdir in included.parents:
        return
    base = included.parent.relative_to(ROOT)
    parent_dir = (srcdir / parent_docname).parent

    def to_github(match: re.Match[str]) -> str:
        path, sep, anchor = match.group(2).partition("#")
        target = Path(os.path.normpath(included.parent / path))
        if srcdir in target.parents and target.suffix in (".md", ".rst") and target.is_file():
            page = os.path.relpath(target, parent_dir).replace(os.sep, "/")
            return f"{match.group(1)}({page}{sep}{anchor})"
        github = os.path.normpath(base / path).replace(os.sep, "/")
        return f"{match.group(1)}({REPOSITORY_FILES}{github}{sep}{anchor})"

    content[0] = _RELATIVE_LINK.sub(to_github, content[0])


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("include-read", _link_repository_files)
    app.add_directive("musicai-conn-fields", ConnFieldsDirective)
    app.add_directive("musicai-requirements", RequirementsDirective)
    app.add_directive("musicai-support-matrix", SupportMatrixDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
