"""Every command the README and docs/ give works as written: `queuecast …` lines parse with
the real CLI, `.venv/bin/python bench/…` lines name a benchmark whose parser takes exactly
those flags, paths given to pytest exist, and the extras named in install lines exist.
(Running them is another matter: the benchmarks take minutes, the demo runs until stopped.)"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest

from bench._extras import BENCH_EXTRA, require_for_targets, require_modules
from server.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command line in a fenced or an indented code block."""
    commands = []
    for doc in DOCS:
        text = re.sub(r"\\\n\s*", " ", doc.read_text())  # line continuations
        in_fence = False
        for number, raw in enumerate(text.splitlines(), 1):
            if raw.lstrip().startswith("```"):
                in_fence = not in_fence
                continue
            line = raw.strip()
            in_code = in_fence or raw.startswith("    ")
            if in_code and re.match(r"(queuecast|\.venv/bin/)\S* ", line):
                commands.append((f"{doc.name}:{number}", shlex.split(line, comments=True)))
    return commands


COMMANDS = documented_commands()


def by_program(program: str) -> list[tuple[str, list[str]]]:
    return [(where, argv) for where, argv in COMMANDS if argv[0] == program]


def test_the_docs_give_commands_of_every_kind() -> None:
    programs = {argv[0] for _, argv in COMMANDS}
    assert {"queuecast", ".venv/bin/python", ".venv/bin/pip", ".venv/bin/pytest"} <= programs


@pytest.mark.parametrize(("where", "argv"), by_program("queuecast"))
def test_queuecast_commands_parse(where: str, argv: list[str]) -> None:
    args = build_parser().parse_args(argv[1:])
    assert args.command == argv[1], where


class Parsed(Exception):
    pass


@pytest.mark.parametrize(("where", "argv"), by_program(".venv/bin/python"))
def test_benchmark_commands_name_a_benchmark_that_takes_those_flags(
    where: str, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if argv[1] == "-m":
        module_name, flags = argv[2], argv[3:]
    else:
        script = ROOT / argv[1]
        assert script.is_file(), where
        monkeypatch.syspath_prepend(str(script.parent))  # benchmarks import their siblings
        module_name, flags = script.stem, argv[2:]
    module = importlib.import_module(module_name)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [argv[1], *flags])
    with pytest.raises(Parsed):  # an unknown flag exits through argparse instead
        module.main()


@pytest.mark.parametrize(("where", "argv"), by_program(".venv/bin/pytest"))
def test_test_paths_exist(where: str, argv: list[str]) -> None:
    for arg in argv[1:]:
        if not arg.startswith("-"):
            assert (ROOT / arg.split("::")[0]).exists(), where


def test_installed_extras_exist_and_match_what_benchmarks_print() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for where, argv in by_program(".venv/bin/pip"):
        for arg in argv:
            if match := re.fullmatch(r"\.\[(\w+)\]", arg):
                assert match.group(1) in extras, where
    assert any(shlex.join(argv) == shlex.join(shlex.split(BENCH_EXTRA)) for _, argv in COMMANDS)


def test_a_missing_bench_package_stops_with_the_install_command(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        require_modules("json", "no_such_module_for_queuecast")
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "needs no_such_module_for_queuecast" in err and BENCH_EXTRA in err
    require_modules("json")  # present: nothing happens
    require_for_targets("queuecast")  # no peer: nothing needed
