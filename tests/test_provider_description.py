"""The provider's description and documentation link as Airflow's Providers page renders them.

Airflow 3 strips RST characters on the API side and links every word of the description that its UI's
URL pattern matches exactly; Airflow 2.11 turns ```text <url>`__`` into a link server-side. Both are
exercised with Airflow's own code (and, for Airflow 3, the URL pattern read from its UI bundle).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import airflow_provider_musicai
from airflow_provider_musicai.get_provider_info import get_provider_info

DESCRIPTION = get_provider_info()["description"]


def _airflow3_ui_url_pattern() -> re.Pattern[str]:
    """The regular expression the Airflow 3 UI's Providers table finds URLs in descriptions with."""
    import airflow

    assets = Path(airflow.__file__).parent / "ui" / "dist" / "assets"
    if not assets.is_dir():
        pytest.skip("no Airflow 3 UI bundle (Airflow 2)")
    for bundle in assets.glob("*.js"):
        text = bundle.read_text(errors="replace")
        if "providers.columns.packageName" not in text:
            continue
        found = re.search(r"=/(https\?:\\/\\/.*?)/gu,", text)
        assert found, f"the Providers table's URL pattern was not found in {bundle.name}"
        return re.compile(found.group(1), re.ASCII)
    pytest.fail("the Providers table was not found in Airflow's UI bundle")


def test_airflow3_links_the_music_ai_url_exactly() -> None:
    services = pytest.importorskip(
        "airflow.api_fastapi.core_api.services.public.providers", reason="Airflow 2 has no FastAPI API"
    )
    served = services._remove_rst_syntax(DESCRIPTION)
    urls = _airflow3_ui_url_pattern().findall(served)
    # What the UI does: split on spaces and link each word that equals a match.
    linked = [word for word in re.sub(r"\n(?:and)?", " ", served).split(" ") if word in urls]
    assert linked == ["https://music.ai/"]
    assert "stem separation" in served


def test_airflow2_links_the_music_ai_url_exactly() -> None:
    views = pytest.importorskip("airflow.www.views", reason="Airflow 3 has no Flask views")

    rendered = str(views.ProviderView._clean_description(None, DESCRIPTION))
    assert re.findall(r'href="([^"]*)"', rendered) == ["https://music.ai/"]
    assert ">Music AI</a>" in rendered
    assert "`" not in rendered and "&lt;" not in rendered


def test_version_is_defined_once() -> None:
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert not re.search(r"^version\s*=", pyproject, re.MULTILINE)
    assert get_provider_info()["versions"] == [airflow_provider_musicai.__version__]
