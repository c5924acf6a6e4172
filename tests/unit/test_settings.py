"""Settings: CLI > env > default, one name scheme, errors that name their source."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from server.settings import Settings


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    Settings.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_without_args_or_env() -> None:
    settings = Settings.load(parse_args(), environ={})
    assert settings == Settings()
    assert settings.rps == 2.0
    assert settings.burst == 5
    assert settings.poll_interval == 2.0
    assert settings.ewt_threshold == 5.0
    assert settings.redis_url is None


def test_load_ignores_the_real_environment_when_given_one(monkeypatch) -> None:
    monkeypatch.setenv("QUEUECAST_PORT", "1234")
    assert Settings.load(environ={}).port == 8000
    assert Settings.load().port == 1234


def test_cli_beats_env_beats_default() -> None:
    environ = {"QUEUECAST_RPS": "3.5", "QUEUECAST_BURST": "9", "QUEUECAST_REGION": "eu-west-2"}
    settings = Settings.load(parse_args("--rps", "7", "--poll-interval", "0.5"), environ=environ)
    assert settings.rps == 7.0  # CLI over env
    assert settings.burst == 9  # env over default
    assert settings.region == "eu-west-2"
    assert settings.poll_interval == 0.5  # CLI over default
    assert settings.host == "127.0.0.1"  # default


def test_overrides_win_over_everything() -> None:
    settings = Settings.load(parse_args("--port", "1"), environ={"QUEUECAST_PORT": "2"}, port=3)
    assert settings.port == 3


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_has_a_flag_and_an_env_var(field) -> None:
    assert Settings.env_name(field) == "QUEUECAST_" + field.upper()
    assert Settings.flag_name(field) == "--" + field.replace("_", "-")
    args = parse_args()
    assert hasattr(args, field)
    assert getattr(args, field) is None  # unset flags leave env and defaults in charge


def test_names_are_derived_from_the_field() -> None:
    assert Settings.env_name("connect_endpoint_url") == "QUEUECAST_CONNECT_ENDPOINT_URL"
    assert Settings.flag_name("connect_endpoint_url") == "--connect-endpoint-url"


def test_value_parsing() -> None:
    environ = {
        "QUEUECAST_REDIS_URL": "redis://127.0.0.1:1/0",
        "QUEUECAST_ALLOWED_ORIGINS": " https://a.example , ,https://b.example",
        "QUEUECAST_LOG_LEVEL": "debug",
        "QUEUECAST_EWT_THRESHOLD": "0",
        "QUEUECAST_LINGER": "0",
        "QUEUECAST_PORT": "0",
    }
    settings = Settings.load(environ=environ)
    assert settings.redis_url == "redis://127.0.0.1:1/0"
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.log_level == "DEBUG"
    assert settings.ewt_threshold == 0.0
    assert settings.linger == 0.0
    assert settings.port == 0


def test_empty_optional_string_means_unset() -> None:
    assert Settings.load(environ={"QUEUECAST_REDIS_URL": ""}).redis_url is None


BAD_VALUES = [
    ("rps", "0"),
    ("rps", "-1"),
    ("rps", "nan"),
    ("rps", "fast"),
    ("burst", "0"),
    ("burst", "2.5"),
    ("port", "65536"),
    ("port", "-1"),
    ("port", "http"),
    ("poll_interval", "0"),
    ("ewt_threshold", "-0.5"),
    ("ewt_threshold", "nan"),
    ("log_level", "loud"),
    ("stale_after", ""),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_env_value_names_the_env_var(field, value) -> None:
    with pytest.raises(ValueError, match=f"^{Settings.env_name(field)}: "):
        Settings.load(environ={Settings.env_name(field): value})


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_cli_value_names_the_flag(field, value) -> None:
    flag = Settings.flag_name(field)
    with pytest.raises(ValueError, match=f"^{flag}: "):
        Settings.load(parse_args(f"{flag}={value}"), environ={Settings.env_name(field): "1"})


def test_markdown_table_lists_every_setting() -> None:
    table = Settings.markdown_table()
    lines = table.splitlines()
    assert lines[0].startswith("| Environment variable | Flag | Default |")
    fields = dataclasses.fields(Settings)
    assert len(lines) == 2 + len(fields)
    for f, line in zip(fields, lines[2:], strict=True):
        assert f"`{Settings.env_name(f.name)}`" in line
        assert f"`{Settings.flag_name(f.name)}`" in line
        assert f.metadata["help"] in line
    assert "| `QUEUECAST_REDIS_URL` | `--redis-url` | `unset` |" in table
    assert "| `QUEUECAST_RPS` | `--rps` | `2.0` |" in table
    assert "| `QUEUECAST_ALLOWED_ORIGINS` | `--allowed-origins` | `empty` |" in table


def test_help_mentions_env_and_default() -> None:
    parser = argparse.ArgumentParser()
    Settings.add_arguments(parser)
    text = parser.format_help()
    assert "QUEUECAST_POLL_INTERVAL" in text
    assert "default unset" in text


def test_redacted_lists_every_setting_and_hides_secrets() -> None:
    settings = Settings(redis_url="redis://:hunter2@10.0.0.1:6380/0", region="eu-west-2")
    redacted = settings.redacted()
    assert set(redacted) == {f.name for f in dataclasses.fields(Settings)}
    assert "hunter2" not in repr(redacted)
    assert redacted["redis_url"] == "***"
    assert redacted["region"] == "eu-west-2"
    for f in dataclasses.fields(Settings):
        if not f.metadata["secret"]:
            assert redacted[f.name] == getattr(settings, f.name)


def test_redacted_keeps_unset_secrets_visible_as_unset() -> None:
    assert Settings().redacted()["redis_url"] is None
