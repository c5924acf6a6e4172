"""`queuecast serve` refuses to start open by accident; `--allow-anonymous` opens it loudly;
`queuecast token` mints what the service accepts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from server.access.tokens import TokenVerifier
from tests.support.emulator import REPO_ROOT
from tests.support.service import TEST_SECRET, start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    # serve needs its instance (tests/security/test_instances.py); these tests are about the rest.
    return {**env, "QUEUECAST_INSTANCE_ID": "cd613e30-d8f1-4adf-91b7-584a2265b1f5", **extra}


async def serve_exit(*args: str, **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "serve",
        "--port",
        "0",
        *args,
        cwd=REPO_ROOT,
        env=_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert b"ready" not in out
    return proc.returncode or 0, err.decode()


async def test_serve_refuses_to_start_without_a_key(tmp_path):
    status, err = await serve_exit()
    assert status == 2
    assert "--allow-anonymous" in err and "QUEUECAST_SECRET" in err
    status, err = await serve_exit(QUEUECAST_SECRET="short")
    assert status == 2 and "at least 32" in err
    status, err = await serve_exit("--secret-file", str(tmp_path / "missing"))
    assert status == 2 and "--secret-file" in err
    status, err = await serve_exit("--events-key", "short", QUEUECAST_SECRET=TEST_SECRET)
    assert status == 2 and "events key needs 16+" in err
    status, err = await serve_exit(
        "--allowed-origins", "https://a.example; script-src *", QUEUECAST_SECRET=TEST_SECRET
    )
    assert status == 2 and "not an origin" in err


async def test_serve_refuses_a_static_dir_that_does_not_exist(tmp_path):
    missing = tmp_path / "no-such-static"
    status, err = await serve_exit("--static-dir", str(missing), QUEUECAST_SECRET=TEST_SECRET)
    assert status == 2
    assert f"--static-dir {missing}: does not exist" in err


async def test_allow_anonymous_warns_and_serves_anyone(emulator, tmp_path):
    mine = (await emulator.create_contact("sales"))["contactId"]
    log = tmp_path / "stderr.log"
    async with start_service_process(
        emulator, None, "--allow-anonymous", env={"QUEUECAST_SECRET": ""}, stderr=log
    ) as service:
        async with ws_client(service.ws_url, token=None) as ws:
            await ws.subscribe(mine)
            assert (await ws.next())["contact"] == mine
        assert (await service.http.get(f"/v1/contacts/{mine}")).status_code == 200
    assert "WARNING: --allow-anonymous" in log.read_text()


def test_token_command_mints_what_the_service_accepts():
    contact = "1a2b8f1f-f1fd-42a2-9755-d4c13a902931"
    done = subprocess.run(
        [sys.executable, "-m", "server", "token", "--scope", "contact", "--contact", contact],
        cwd=REPO_ROOT,
        env=_env(QUEUECAST_SECRET=TEST_SECRET),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    grant = TokenVerifier({None: TEST_SECRET}).verify(done.stdout.strip())
    assert grant.scope == "contact" and grant.contact == contact
    refused = subprocess.run(
        [sys.executable, "-m", "server", "token", "--scope", "service"],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert refused.returncode == 2 and "QUEUECAST_SECRET" in refused.stderr
