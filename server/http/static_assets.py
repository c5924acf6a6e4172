"""Where the widget, the wallboard and the demo page are served from.

The repository keeps them in `static/` at its root. A wheel carries the same files as
`server/_static` (pyproject.toml maps `static/` there), so an installed package finds them
through `importlib.resources`; a source checkout (an editable install, or `server` on
PYTHONPATH) has no `server/_static` and serves the repository's `static/` itself, so edits
show without reinstalling. `--static-dir` overrides both.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from server.settings import Settings

PACKAGED_NAME = "_static"


def packaged_static_dir() -> Path:
    """The static files that came with the package (installed), or the checkout's static/.

    Raises:
        ValueError: neither exists (an install that lost its package data).
    """
    package = importlib.resources.files("server")
    # StaticFiles needs a directory on disk: a package imported from a zip has none.
    if isinstance(package, Path):
        installed = package / PACKAGED_NAME
        if installed.is_dir():
            return installed
        checkout = package.parent / "static"
        if (package.parent / "pyproject.toml").is_file() and checkout.is_dir():
            return checkout
    raise ValueError(
        f"the widget and pages are missing from this installation ({package}/{PACKAGED_NAME}); "
        "reinstall queuecast, or point --static-dir at a copy of static/"
    )


def static_directory(settings: Settings) -> Path:
    """The folder `/static/` serves: `--static-dir`, else the packaged one.

    Raises:
        ValueError: `--static-dir` names no directory (the message names the path), or the
            packaged files are missing.
    """
    if settings.static_dir is None:
        return packaged_static_dir()
    chosen = Path(settings.static_dir)
    if not chosen.is_dir():
        reason = "is not a directory" if chosen.exists() else "does not exist"
        raise ValueError(f"--static-dir {settings.static_dir}: {reason}")
    return chosen
