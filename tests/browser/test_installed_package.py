"""The package as users get it: build the sdist and the wheel from this checkout, install the
wheel into a fresh virtualenv outside it, run that `queuecast serve`, and use the widget and
the wallboard it serves in Chromium.

The dependencies come from the pinned constraints; their wheels are kept in
artifacts/wheelhouse/ (git-ignored) so that only the first run downloads them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import eventually, mount_widget, track
from tests.support.emulator import REPO_ROOT
from tests.support.service import mint_test_token, start_service_process

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WHEELHOUSE = REPO_ROOT / "artifacts" / "wheelhouse"
CONSTRAINTS = REPO_ROOT / "constraints.txt"


def attempt(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Nothing of the checkout may leak in: no PYTHONPATH, and never the checkout as cwd.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run(*command: str | Path, cwd: Path) -> str:
    done = attempt(*command, cwd=cwd)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def pip_into(python: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # This pip, aimed at the new environment (made without its own pip, which is slow to set up).
    return attempt(sys.executable, "-m", "pip", "--python", python, *args, cwd=cwd)


def install_offline(python: Path, wheel: Path, cwd: Path) -> bool:
    offline = ("--no-index", "--find-links", WHEELHOUSE, "-c", CONSTRAINTS)
    return (
        pip_into(python, "install", "-q", "--no-compile", *offline, wheel, cwd=cwd).returncode == 0
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin/` of a fresh virtualenv holding the wheel built from this checkout."""
    root = tmp_path_factory.mktemp("installed")
    dist = root / "dist"
    # sdist first, then the wheel from the unpacked sdist: what an index would serve.
    run(sys.executable, "-m", "build", "--outdir", dist, REPO_ROOT, cwd=root)
    [wheel] = dist.glob("queuecast-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", root / "venv", cwd=root)
    bin_dir = root / "venv" / "bin"
    python = bin_dir / "python"
    if not install_offline(python, wheel, root):
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        fill = pip_into(python, "wheel", "-q", "-w", WHEELHOUSE, "-c", CONSTRAINTS, wheel, cwd=root)
        assert fill.returncode == 0, fill.stderr[-3000:]
        for own in WHEELHOUSE.glob("queuecast-*.whl"):
            own.unlink()  # only dependencies are kept; queuecast is always built afresh
        assert install_offline(python, wheel, root), "install from the wheelhouse"
    return bin_dir


def test_the_wheel_carries_every_static_file_and_imports_from_the_venv(installed):
    probe = (
        "import importlib.resources as r, server; "
        "print(server.__file__); "
        "print(*sorted(p.name for p in (r.files('server') / '_static').iterdir()))"
    )
    module, files = run(installed / "python", "-c", probe, cwd=installed).splitlines()
    assert Path(module).is_relative_to(installed.parent), module
    assert files.split() == sorted(p.name for p in (REPO_ROOT / "static").iterdir())


async def test_installed_service_serves_the_widget_and_the_wallboard(
    installed, page, emulator, monkeypatch
):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    async with start_service_process(
        emulator,
        None,
        "--poll-interval",
        "0.25",
        "--ewt-threshold",
        "0",
        command=[str(installed / "queuecast")],
        cwd=installed,
    ) as service:
        contacts = [await emulator.create_contact("sales") for _ in range(2)]
        mine = contacts[1]["contactId"]
        widget = await mount_widget(page, service, mine)
        await widget.wait_for("s => s.position === 2")
        assert await widget.text("position") == "You are 2nd in line"
        await emulator.connect(contacts[0])
        await widget.wait_for("s => s.position === 1")

        sales = emulator.queues["sales"]
        await track(service, mine)
        token = mint_test_token("queues", queues=[sales])
        await page.goto(f"{service.url}/static/wallboard.html?queues={sales}:Sales#token={token}")

        async def shows_mine() -> bool:
            rows = await page.eval_on_selector_all(
                f"section[data-queue='{sales}'] tbody tr",
                "rows => rows.map(r => r.dataset.contact)",
            )
            return rows == [mine]

        await eventually(shows_mine)
        assert await page.inner_text("#connection") == "Live"
