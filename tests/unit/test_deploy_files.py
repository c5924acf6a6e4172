"""docker-compose.yml and the nginx config stay valid without a Docker engine: the compose
file parses, wires what docs/deploy.md promises, and every queuecast command in it is one the
CLI accepts (so a renamed flag cannot silently break the deployment)."""

from __future__ import annotations

from pathlib import Path

import yaml

from server.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_redis_emulator_two_replicas_and_a_balancer() -> None:
    services = compose()["services"]
    assert {"redis", "emulator", "queuecast-1", "queuecast-2", "lb"} <= set(services)
    assert services["lb"]["ports"] == ["8080:8080"]
    for name in ("queuecast-1", "queuecast-2"):
        env = services[name]["environment"]
        assert env["QUEUECAST_REDIS_URL"] == "redis://redis:6379/0"
        assert env["QUEUECAST_CONNECT_ENDPOINT_URL"] == "http://emulator:8001"
        assert "readyz" in " ".join(services[name]["healthcheck"]["test"])


def test_every_queuecast_command_in_compose_parses() -> None:
    parser = build_parser()
    for name, service in compose()["services"].items():
        if service.get("image") == "queuecast:local":
            args = parser.parse_args(service["command"])
            assert args.command in {"serve", "simulate"}, name


def test_nginx_upgrades_websockets_to_both_replicas() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "server queuecast-1:8000" in conf and "server queuecast-2:8000" in conf
