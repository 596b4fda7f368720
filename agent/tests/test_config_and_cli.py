"""The configuration file and the CLI commands that work without a server."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from gridfleet_agent.cli import main
from gridfleet_agent.config import AgentConfig, AgentSection, ConfigError, parse_config
from gridfleet_agent.queue import Outbox, RecordKind

EXAMPLE = Path(__file__).resolve().parents[1] / "packaging" / "agent.toml"


def test_documented_example_config_shows_exactly_the_defaults():
    parsed = parse_config(tomllib.loads(EXAMPLE.read_text()))
    assert parsed == AgentConfig(agent=dataclasses.replace(AgentSection(), server_url="https://fleet.example.com"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"agent": {"server_url": "https://x", "sever": 1}}, "unknown key(s) ['sever'] in [agent]"),
        ({"agent": {"server_url": "https://x"}, "uplnk": {}}, "unknown section(s) ['uplnk']"),
        ({"agent": {"server_url": "https://x"}, "updates": {"poll_interval": "5m"}}, "[updates] poll_interval must be"),
        ({"agent": {"server_url": "https://x"}, "updates": {"defer_hooks": ["true"]}}, "list of commands"),
        ({"agent": {}}, "server_url must be set"),
    ],
)
def test_bad_config_is_refused_with_the_key_to_fix(data, message):
    with pytest.raises(ConfigError) as refused:
        parse_config(data)
    assert message in str(refused.value)


def test_commands_and_paths_are_typed():
    config = parse_config(
        {
            "agent": {"server_url": "http://127.0.0.1:8000/", "state_dir": "/tmp/gw"},
            "updates": {"defer_hooks": [["/bin/check", "--quiet"]], "reboot_command": []},
        }
    )
    assert config.server_url == "http://127.0.0.1:8000"
    assert config.state_dir == Path("/tmp/gw")
    assert config.updates.defer_hooks == (("/bin/check", "--quiet"),)
    assert config.updates.reboot_command == ()


def test_status_without_a_running_daemon_reads_the_state_directory(tmp_path: Path, capsys):
    state = tmp_path / "state"
    state.mkdir()
    outbox = Outbox(state / "outbox.sqlite3")
    outbox.put(RecordKind.ALARM, {"code": "x"})
    outbox.close()
    (state / "firmware" / "slots" / "b").mkdir(parents=True)
    (state / "firmware" / "slots" / "b" / "VERSION").write_text("2.1.0")
    (state / "firmware" / "current").symlink_to("slots/b")

    assert main(["--server", "http://127.0.0.1:9", "--state-dir", str(state), "status", "--json"]) == 0

    status = json.loads(capsys.readouterr().out)
    assert status["daemon"] == "not running"
    assert status["installed"] == {"firmware": "2.1.0", "config": None, "license": None}
    assert status["queue"]["depth"] == 1
    assert status["queue"]["by_kind"] == {"alarm": 1}


def test_check_now_without_a_running_daemon_fails(tmp_path: Path, capsys):
    assert main(["--server", "http://127.0.0.1:9", "--state-dir", str(tmp_path), "check-now"]) == 1
    assert "no agent daemon is listening" in capsys.readouterr().err


def test_enroll_reports_an_unreachable_server(tmp_path: Path, capsys):
    code = main(
        ["--server", "http://127.0.0.1:9", "--state-dir", str(tmp_path), "enroll", "--token", "t", "--serial", "GW"]
    )
    assert code == 1
    assert "unreachable" in capsys.readouterr().err


def test_missing_config_file_is_reported(tmp_path: Path, capsys):
    assert main(["--config", str(tmp_path / "nope.toml"), "status"]) == 1
    assert "no configuration file" in capsys.readouterr().err
