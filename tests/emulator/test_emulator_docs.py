"""The emulator's command line: a bad workflows file exits 2 and names the problem."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_musicai.testing.emulator.__main__ import main

pytestmark = pytest.mark.airflow_independent


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the workflows file"),
        ("{", "not valid JSON"),
        ('{"slug": "x"}', 'expected a JSON list of workflow declarations or {"workflows": [...]}'),
        (
            '[{"slug": "x", "inputs": [], "outputs": [{"name": "o"}]}]',
            "at least one input must have type 'file'",
        ),
    ],
)
def test_a_bad_workflows_file_exits_2_naming_the_problem(tmp_path, capsys, monkeypatch, content, message):
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)
    path = tmp_path / "workflows.json"
    if content is not None:
        path.write_text(content)
    assert main(["--workflows", str(path)]) == 2
    assert message in capsys.readouterr().err
