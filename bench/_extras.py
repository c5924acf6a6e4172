"""What a benchmark needs beyond the `dev` extra, checked before it starts.

A missing package or tool stops the benchmark at once (exit status 2) with the command that
installs it, instead of a ModuleNotFoundError, or a peer that never comes up, minutes in.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

BENCH_EXTRA = ".venv/bin/pip install -c constraints.txt -e '.[bench]'"


def missing_modules(*modules: str) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def stop(message: str) -> None:
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    raise SystemExit(2)


def require_modules(*modules: str) -> None:
    """Stop unless every module is importable (they come with the `bench` extra)."""
    missing = missing_modules(*modules)
    if missing:
        stop(f"needs {', '.join(missing)}, from the `bench` extra: {BENCH_EXTRA}")


def require_for_targets(targets: str) -> None:
    """The broadcaster peer needs encode/broadcaster, and wsproto to be served with it."""
    names = targets.split(",")
    needed = []
    if any(name.startswith("broadcaster") for name in names):
        needed.append("broadcaster")
    if any(name.endswith("-wsproto") for name in names):
        needed.append("wsproto")
    require_modules(*needed)


def require_for_profile(profile: str | None) -> None:
    """`--profile X.data` records with perf; any other `--profile` with the venv's py-spy."""
    if profile is None:
        return
    if profile.endswith(".data"):
        if shutil.which("perf") is None:
            stop("--profile *.data needs perf: apt-get install linux-perf")
    elif not Path(sys.executable).with_name("py-spy").exists():
        stop(f"--profile needs py-spy, from the `bench` extra: {BENCH_EXTRA}")
