"""Settings come from the environment: embedded defaults with none, services with URLs, and a production
mode that refuses unsafe configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import json, django; from django.conf import settings as s; django.setup();"
    "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], 'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
    " 'eager': s.CELERY_TASK_ALWAYS_EAGER, 'broker': s.CELERY_BROKER_URL, 'debug': s.DEBUG}))"
)


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_TASK_ALWAYS_EAGER",
            "DEBUG",
            "SECRET_KEY",
            "GRIDFLEET_ENV",
            "CELERY_BROKER_URL",
        }
    }
    clean |= {"DJANGO_SETTINGS_MODULE": "fleet.settings", "GRIDFLEET_VAR_DIR": str(tmp_path)} | env
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, check=False
    )


def test_with_no_environment_the_server_is_embedded(tmp_path: Path) -> None:
    result = load_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "db": "django.db.backends.sqlite3",
        "layer": "channels.layers.InMemoryChannelLayer",
        "eager": True,
        "broker": "memory://",
        "debug": True,
    }


def test_database_and_redis_urls_switch_to_postgresql_redis_and_real_workers(tmp_path: Path) -> None:
    result = load_settings(
        tmp_path, DATABASE_URL="postgres://gf:pw@db.example:5432/gridfleet", REDIS_URL="redis://cache.example:6379/0"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "db": "django.db.backends.postgresql",
        "layer": "fleet.core.channel_layer.RedisChannelLayer",
        "eager": False,
        "broker": "redis://cache.example:6379/0",
        "debug": True,
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "1", "SECRET_KEY": "x" * 40}, "refuses to start with DEBUG on"),
        ({"DEBUG": "0"}, "refuses the default SECRET_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "refuses the default SECRET_KEY"),
    ],
)
def test_production_refuses_debug_and_the_default_secret_key(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = load_settings(tmp_path, GRIDFLEET_ENV="production", **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_starts_with_a_real_secret_and_debug_off(tmp_path: Path) -> None:
    result = load_settings(
        tmp_path, GRIDFLEET_ENV="production", DEBUG="0", SECRET_KEY="k" * 50, GRIDFLEET_PKI_KEK="a" * 64
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is False


def test_a_tuf_public_url_not_ending_in_tuf_is_refused_at_start(tmp_path: Path) -> None:
    result = load_settings(tmp_path, GRIDFLEET_TUF_PUBLIC_URL="https://cdn.example.com/repo")
    assert result.returncode != 0
    assert "GRIDFLEET_TUF_PUBLIC_URL must end in /tuf/" in result.stderr
    assert load_settings(tmp_path, GRIDFLEET_TUF_PUBLIC_URL="https://cdn.example.com/tuf/").returncode == 0
