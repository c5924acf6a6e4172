"""The service's import graph holds neither the emulator nor the demo: the CLI loads each
command's module only when that command runs."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "code",
    [
        "import server.app",
        "import server.cli.serve",
        "from server.cli import build_parser; build_parser('serve')",
    ],
)
def test_the_service_does_not_import_the_emulator_or_the_demo(code: str) -> None:
    loaded = _modules_after(code)
    assert "server.app" in loaded or "server.cli" in loaded
    assert not {m for m in loaded if m.startswith(("server.emulator", "server.demo"))}


def test_the_whole_parser_still_knows_every_command() -> None:
    loaded = _modules_after("from server.cli import build_parser; build_parser()")
    assert {"server.emulator.cli", "server.demo", "server.cli.token"} <= loaded
