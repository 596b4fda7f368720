"""The files of deploy/ as far as this machine can check them without installing them: the systemd
units pass `systemd-analyze verify`, and the example environment starts the server in production mode.
(tests/production/test_nginx.py runs deploy/nginx; test_production_trial.py runs the whole recipe.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.production.stack import REPO_ROOT
from tests.test_settings import load_settings

DEPLOY = REPO_ROOT / "deploy"


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    venv_bin = Path(sys.executable).parent
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        # Installed paths point at this checkout and its virtualenv, so the commands exist.
        text = unit.read_text().replace("/srv/gridfleet/venv/bin", str(venv_bin))
        text = text.replace("/srv/gridfleet/app", str(REPO_ROOT))
        name = unit.name.replace("@.service", "@8001.service")
        (tmp_path / name).write_text(text)
        if unit.name.endswith("@.service"):
            (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / name))
    assert len(units) == 4
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    # Unknown keys are only warnings (exit 0): any output at all fails the test.
    assert verified.returncode == 0 and verified.stdout == verified.stderr == "", verified.stderr


def test_exactly_one_beat_and_its_schedule_outside_the_working_directory() -> None:
    beat = (DEPLOY / "systemd" / "gridfleet-beat.service").read_text()
    assert "--schedule /var/lib/gridfleet/celerybeat-schedule" in beat
    target = (DEPLOY / "systemd" / "gridfleet.target").read_text()
    assert "gridfleet-beat" not in target  # enabled on one host only, never pulled in everywhere


def test_the_example_environment_starts_the_server_in_production_mode(tmp_path: Path) -> None:
    env = {}
    for line in (DEPLOY / "gridfleet.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env = {key: value.replace("change-me", "x" * 48) for key, value in env.items()}
    env |= {"GRIDFLEET_VAR_DIR": str(tmp_path), "STATIC_ROOT": str(tmp_path / "static")}
    result = load_settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["debug"] is False and loaded["layer"] == "fleet.core.channel_layer.RedisChannelLayer"
