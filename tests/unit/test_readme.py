"""The README's configuration table is generated from the settings; it must not drift."""

from __future__ import annotations

from pathlib import Path

from server.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_setting_exactly_as_declared() -> None:
    assert Settings.markdown_table() in README.read_text(), "run scripts/readme-table"


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert "scripts/test" in ci
    assert "scripts/test\n" in README.read_text()
