"""The `field` section of the configuration bundle: what is accepted, and how errors read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gridfleet_agent.field import FieldConfig, FieldConfigError


def test_a_minimal_tcp_device_gets_documented_defaults() -> None:
    config = FieldConfig.from_dict({"devices": [{"id": "inv-1", "protocol": "sunspec-tcp", "host": "10.0.0.5"}]})

    (device,) = config.devices
    assert (device.port, device.unit_id, device.kind, device.poll_interval, device.timeout) == (
        502,
        1,
        "inverter",
        10.0,
        2.0,
    )
    assert (device.debounce_polls, device.comm_loss_after, device.models, device.points) == (2, 3, None, ())
    assert device.address == "10.0.0.5:502/1"
    assert config.mqtt.enabled is False


def test_rtu_devices_are_addressed_by_serial_port_and_unit() -> None:
    config = FieldConfig.from_dict(
        {
            "devices": [
                {
                    "id": "meter-1",
                    "kind": "meter",
                    "protocol": "sunspec-rtu",
                    "serial_port": "/dev/ttyUSB0",
                    "unit_id": 7,
                    "baudrate": 19200,
                    "parity": "E",
                    "models": [701],
                    "points": ["701.TmpAmb"],
                },
            ]
        }
    )

    (device,) = config.devices
    assert device.address == "/dev/ttyUSB0/7"
    assert device.models == frozenset({1, 701})  # model 1 is always read: it carries the identity
    assert device.points == ((701, "TmpAmb"),)


def test_every_problem_is_reported_at_once_with_the_path_to_fix() -> None:
    with pytest.raises(FieldConfigError) as caught:
        FieldConfig.from_dict(
            {
                "devices": [
                    {"id": "inv 1", "protocol": "modbus", "unit_id": 300, "poll_interval": 0},
                    {"id": "m", "protocol": "sunspec-rtu", "models": [64110], "points": ["TmpAmb"], "colour": "red"},
                    {"id": "m", "protocol": "sunspec-rtu", "serial_port": "/dev/ttyS1"},
                    {"id": "m", "protocol": "sunspec-rtu", "serial_port": "/dev/ttyS2"},
                ],
                "mqtt": {"enabled": "yes", "topic_prefix": "site/#"},
            }
        )

    assert caught.value.problems == [
        "devices[0].id: required, 1-64 letters, digits, '.', '_' or '-'",
        "devices[0].protocol: must be one of sunspec-tcp, sunspec-rtu, modbus-tcp, modbus-rtu (got 'modbus')",
        "devices[0].unit_id: must be an integer 1..247 (got 300)",
        "devices[0].poll_interval: must be a number of seconds 0.05..86400 (got 0)",
        "devices[1].colour: unknown key (known: baudrate, comm_loss_after, debounce_polls, host, id, kind, models, "
        "parity, points, poll_interval, port, protocol, serial, serial_port, template, timeout, unit_id)",
        "devices[1].serial_port: required for sunspec-rtu (e.g. /dev/ttyUSB0)",
        "devices[1].models: unsupported model ids [64110] (supported: 1, 101-103, 123, 201-204, 701-714, 802, 803)",
        "devices[1].points[0]: write a point as '<model id>.<point name>', e.g. '701.TmpAmb' or '705.Crv[1].Pt[2].V'",
        "devices: id 'm' is used more than once",
        "mqtt.enabled: must be true or false",
        "mqtt.topic_prefix: a topic without wildcards, spaces or trailing '/'",
    ]


def test_a_bundle_file_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "field.json"
    path.write_text("{devices: []}")
    with pytest.raises(FieldConfigError, match=r"field\.json"):
        FieldConfig.from_json_file(path)


def test_a_bundle_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "field.json"
    path.write_text(json.dumps({"devices": [], "mqtt": {"enabled": True, "topic_prefix": "site-7"}}))
    assert FieldConfig.from_json_file(path).mqtt.topic_prefix == "site-7"


def test_devices_sharing_a_serial_line_must_agree_on_its_settings() -> None:
    line = {"protocol": "sunspec-rtu", "serial_port": "/dev/ttyUSB0"}
    with pytest.raises(FieldConfigError, match="'b' shares /dev/ttyUSB0 with another device but not its baudrate"):
        FieldConfig.from_dict(
            {"devices": [{"id": "a", "unit_id": 1, **line}, {"id": "b", "unit_id": 2, "baudrate": 19200, **line}]}
        )
