"""The ``gridfleet-agent`` command line.

    gridfleet-agent [--config FILE] enroll --token T [--serial S] [--server URL]
    gridfleet-agent [--config FILE] run
    gridfleet-agent [--config FILE] status [--json]
    gridfleet-agent [--config FILE] check-now
    gridfleet-agent [--config FILE] installers [--json]
    gridfleet-agent simulate --count N --server URL --tokens FILE [--state-dir DIR]
    gridfleet-agent tuf-client ...        (the TUF client-test interface, see tuf_client)

Exit status 0 on success, 1 on failure, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gridfleet_agent import __version__, tuf_client
from gridfleet_agent.config import DEFAULT_CONFIG_PATH, AgentConfig, ConfigError, load_config, parse_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridfleet-agent",
        description="Gridfleet gateway agent.",
        epilog="Also: gridfleet-agent tuf-client --help (the TUF client-test interface). See docs/agent.md.",
    )
    parser.add_argument("--version", action="version", version=f"gridfleet-agent {__version__}")
    parser.add_argument(
        "--config", type=Path, help=f"TOML configuration (default $GRIDFLEET_AGENT_CONFIG or {DEFAULT_CONFIG_PATH})"
    )
    parser.add_argument("--server", help="server base URL (overrides [agent] server_url)")
    parser.add_argument("--state-dir", type=Path, help="state directory (overrides [agent] state_dir)")
    sub = parser.add_subparsers(dest="command", required=True)

    enroll = sub.add_parser("enroll", help="create this gateway's key and get its certificate")
    enroll.add_argument("--token", required=True, help="one-time enrollment token from the server")
    enroll.add_argument("--serial", default=socket.gethostname(), help="gateway serial (default: host name)")
    enroll.add_argument("--wait", type=float, default=0.0, help="seconds to wait for operator acceptance")

    sub.add_parser("run", help="run the daemon (foreground; systemd runs it)")
    status = sub.add_parser("status", help="installed versions, last check, queue depth, connection")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("check-now", help="ask the running daemon for an immediate update check")
    installers = sub.add_parser(
        "installers", help="the registered installers (entry points) and which one handles each bundle type"
    )
    installers.add_argument("--json", action="store_true", help="machine-readable output")

    simulate = sub.add_parser(
        "simulate", help="run N simulated agents in this process (development, demos; needs [simulators])"
    )
    simulate.add_argument("--count", type=int, required=True)
    simulate.add_argument(
        "--tokens", type=Path, help="CSV serial,token[,expires_at] from the server (needed for agents not enrolled yet)"
    )
    simulate.add_argument("--prefix", default="SIM-", help="serial prefix for simulated gateways without a CSV")
    simulate.add_argument("--telemetry-interval", type=float, default=10.0)
    simulate.add_argument(
        "--field",
        choices=["simulated", "sunspec"],
        default="simulated",
        help="simulated: an in-process inverter model; sunspec: a SunSpec Modbus inverter per gateway, polled by "
        "the real field stack, with occasional faults",
    )
    return parser


def resolve_config(args: argparse.Namespace) -> AgentConfig:
    """The config file, with --server / --state-dir applied; the file may be absent if --server is given."""
    try:
        config = load_config(args.config)
    except ConfigError:
        if not args.server or (args.config and args.config.exists()):
            raise
        config = parse_config({"agent": {"server_url": args.server}})
    agent = config.agent
    if args.server:
        agent = type(agent)(**{**agent.__dict__, "server_url": args.server})
    if args.state_dir:
        agent = type(agent)(**{**agent.__dict__, "state_dir": args.state_dir})
    return type(config)(**{**config.__dict__, "agent": agent})


def cmd_enroll(config: AgentConfig, args: argparse.Namespace) -> int:
    from gridfleet_agent.daemon import ssl_context_for
    from gridfleet_agent.identity import enroll

    identity = enroll(
        config.server_url,
        args.token,
        args.serial,
        config.state_dir,
        hardware_model=config.agent.hardware_model,
        ssl_context=ssl_context_for(config),
        wait_seconds=args.wait,
    )
    print(f"enrolled {identity.serial}: LFDI {identity.lfdi}, certificate valid until {identity.not_after:%Y-%m-%d}")
    return 0


def cmd_run(config: AgentConfig) -> int:
    from gridfleet_agent.daemon import Agent, QueueLogHandler, run_until_signalled
    from gridfleet_agent.logfiles import add_file_handler, configure_console

    configure_console(config.agent.log_level.upper())
    agent = Agent(config)
    logging.getLogger("gridfleet_agent").addHandler(QueueLogHandler(agent.outbox, logging.INFO))
    add_file_handler(config.state_dir, logging.getLogger().level)
    asyncio.run(run_until_signalled(agent.run()))
    return 0


def cmd_status(config: AgentConfig, args: argparse.Namespace) -> int:
    from gridfleet_agent.control import DaemonNotRunning, request
    from gridfleet_agent.daemon import offline_status

    try:
        status = request(config.state_dir, "status")["status"]
    except DaemonNotRunning:
        status = {**offline_status(config), "daemon": "not running"}
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print(_format_status(status))
    return 0


def _format_status(status: dict[str, object], indent: str = "") -> str:
    lines = []
    for key, value in status.items():
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines.append(_format_status(value, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {'-' if value in (None, {}, '') else value}")
    return "\n".join(lines)


def cmd_check_now(config: AgentConfig) -> int:
    from gridfleet_agent.control import DaemonNotRunning, request

    try:
        answer = request(config.state_dir, "check-now")
    except DaemonNotRunning as e:
        print(f"gridfleet-agent: {e}", file=sys.stderr)
        return 1
    print(answer.get("message") or answer.get("error"))
    return 0 if answer.get("ok") else 1


def cmd_simulate(config: AgentConfig, args: argparse.Namespace) -> int:
    try:  # a separate distribution: production gateways do not install it
        from gridfleet_agent_simulators.fleet import run_simulation
    except ModuleNotFoundError as e:
        if e.name != "gridfleet_agent_simulators":
            raise
        print(
            "gridfleet-agent: simulate needs the simulators: pip install gridfleet-agent[simulators] "
            "(from a checkout: pip install ./agent/simulators)",
            file=sys.stderr,
        )
        return 1
    return run_simulation(config, args)


def cmd_installers(config: AgentConfig, args: argparse.Namespace) -> int:
    """Exit 1 when a bundle type is mapped to an installer no distribution registers."""
    from gridfleet_agent.installers.registry import registered

    available = registered()
    listing: dict[str, dict[str, dict[str, Any]]] = {
        "registered": {
            name: {
                "value": entry.value,
                "distribution": f"{entry.dist.name} {entry.dist.version}" if entry.dist else "(gridfleet-agent source)",
            }
            for name, entry in sorted(available.items())
        },
        "bundle_types": {
            kind: {"installer": name, "registered": name in available}
            for kind, name in config.installers.by_kind.items()
        },
    }
    if args.json:
        print(json.dumps(listing, indent=2))
    else:
        for name, about in listing["registered"].items():
            print(f"{name:<16} {about['value']}  [{about['distribution']}]")
        for kind, handled in listing["bundle_types"].items():
            print(f"{kind:<16} -> {handled['installer']}")
    missing = {kind: name for kind, name in config.installers.by_kind.items() if name not in available}
    for kind, name in missing.items():
        print(f"gridfleet-agent: [installers] {kind} = {name!r} is not registered", file=sys.stderr)
    return 1 if missing else 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "tuf-client":
        # Its option layout is fixed by the TUF client-test interface, so it owns its own parser.
        return tuf_client.main(arguments[1:])
    args = build_parser().parse_args(arguments)
    from gridfleet_agent.identity import IdentityError

    try:
        config = resolve_config(args)
        if args.command == "enroll":
            return cmd_enroll(config, args)
        if args.command == "run":
            return cmd_run(config)
        if args.command == "status":
            return cmd_status(config, args)
        if args.command == "check-now":
            return cmd_check_now(config)
        if args.command == "installers":
            return cmd_installers(config, args)
        return cmd_simulate(config, args)
    except (ConfigError, IdentityError, OSError) as e:
        print(f"gridfleet-agent: {e}", file=sys.stderr)
        return 1
