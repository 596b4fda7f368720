"""`python -m gridfleet_agent.field CONFIG`: run the field stack alone and print its records.

For commissioning a site: check a field configuration against the real devices (discovery,
readings, alarms) without a server, and try a power limit. Records are printed as JSON lines.
CONFIG is the `field` object as JSON, or the agent's TOML configuration (its `[field]` table).
With --check it only validates the configuration and its device templates. Exit status: 0 done,
2 invalid configuration, 3 the power limit was not applied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gridfleet_agent.field.config import FieldConfig, FieldConfigError
from gridfleet_agent.field.stack import FieldStack


def load_field_section(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        data = tomllib.loads(text).get("field", {}) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise FieldConfigError([f"{path}: {exc}"]) from exc
    if not isinstance(data, dict):
        raise FieldConfigError([f"{path}: the field configuration must be an object"])
    return data


async def run(config: FieldConfig, *, duration: float, power_limit: tuple[str, float] | None) -> int:
    def show(record: dict[str, Any]) -> None:
        print(json.dumps(record, separators=(",", ":")), flush=True)

    async with FieldStack(config, show) as stack:
        await asyncio.sleep(duration)
        if power_limit is None:
            return 0
        device, percent = power_limit
        outcome = await stack.execute("set_power_limit", {"device": device, "limit_pct": percent})
        print(json.dumps({"command_result": outcome.as_dict()}), flush=True)
        return 0 if outcome.status == "succeeded" else 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gridfleet_agent.field", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="field configuration (.json) or agent configuration (.toml)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to poll (default: %(default)s)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only validate the configuration and its device templates (every problem with its line and field)",
    )
    parser.add_argument(
        "--set-power-limit",
        nargs=2,
        metavar=("DEVICE", "PERCENT"),
        help="after polling, limit DEVICE's active power to PERCENT of WMax and read it back",
    )
    args = parser.parse_args(argv)
    power_limit = None
    if args.set_power_limit:
        try:
            power_limit = (args.set_power_limit[0], float(args.set_power_limit[1]))
        except ValueError:
            parser.error(f"--set-power-limit: {args.set_power_limit[1]!r} is not a number")
    try:
        config = FieldConfig.from_dict(load_field_section(args.config))
    except FieldConfigError as exc:
        for problem in exc.problems:
            print(f"invalid field configuration: {problem}", file=sys.stderr)
        return 2
    if args.check:
        used = sorted({d.template for d in config.devices if d.template})
        print(f"field configuration valid: {len(config.devices)} devices, templates used: {', '.join(used) or 'none'}")
        return 0
    try:
        return asyncio.run(run(config, duration=args.duration, power_limit=power_limit))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
