"""What goes into the wheel and the image, checked without building either (the build itself
is tests/browser/test_installed_package.py): every package is listed, static/ is mapped in as
package data, and the image installs the wheel alone."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from server.http.static_assets import packaged_static_dir, static_directory
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_under_server_is_listed_and_static_is_mapped_in() -> None:
    config = setuptools_config()
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in ROOT.glob("server/**/__init__.py")
    }
    assert set(config["packages"]) == on_disk | {"server._static"}, (
        "add new packages under server/ to [tool.setuptools] packages in pyproject.toml"
    )
    assert config["package-dir"] == {"server._static": "static"}
    assert config["package-data"]["server._static"] == ["*"]


def test_the_license_is_an_spdx_expression() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"


def test_a_checkout_serves_its_own_static_folder() -> None:
    assert packaged_static_dir() == ROOT / "static"
    assert static_directory(Settings()) == ROOT / "static"


def test_static_dir_overrides_and_is_refused_when_it_is_no_directory(tmp_path: Path) -> None:
    assert static_directory(Settings(static_dir=str(tmp_path))) == tmp_path
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=f"--static-dir {re.escape(str(missing))}: does not exist"):
        static_directory(Settings(static_dir=str(missing)))
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ValueError, match="is not a directory"):
        static_directory(Settings(static_dir=str(a_file)))


def dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages and line.strip() and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def test_the_image_installs_the_wheel_and_no_source_tree() -> None:
    build, final = dockerfile_stages()
    assert any("pip wheel" in line for line in build)
    copied = {line.split()[1] for line in build if line.startswith("COPY ")}
    assert {"server", "static"} <= copied
    for source in copied:
        assert (ROOT / source).exists(), source
    # The running image has only what the wheel installed: no server/ or static/ beside it.
    assert not any(re.match(r"COPY (server|static)\b", line) for line in final)
    assert any(re.search(r"pip install .*queuecast-\*\.whl", line) for line in final)
    assert "USER queuecast" in final


def test_the_pins_of_libraries_whose_internals_we_use_hold_the_tested_versions() -> None:
    """uvicorn and redis are pinned to the versions the tests pass on (server/_internals.py);
    the versions the suite runs with (constraints.txt) must be inside those pins."""
    from packaging.requirements import Requirement  # noqa: PLC0415

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = {Requirement(d).name: Requirement(d) for d in project["dependencies"]}
    pinned = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    for name in ("uvicorn", "redis"):
        specifier = requirements[name].specifier
        assert specifier.contains(pinned[name]), (name, str(specifier))
        # Bounded above: a release the tests have not seen is not accepted.
        assert any(spec.operator in ("<", "<=", "==", "~=") for spec in specifier), name
