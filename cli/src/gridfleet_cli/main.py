"""`gridfleet`: log in, list what the fleet holds, and open maintenance tunnels.

Configuration: GRIDFLEET_URL and GRIDFLEET_TOKEN, else what `gridfleet login` saved.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from gridfleet_cli import __version__
from gridfleet_cli.client import CliError, Server, request, save_login
from gridfleet_cli.output import show
from gridfleet_cli.tunnel import human_bytes, open_tunnel

LISTS: dict[str, tuple[str, list[str], dict[str, str]]] = {
    # command: (API path, table columns, {option: API filter})
    "gateways": (
        "/api/inventory/gateways/",
        ["serial", "name", "status", "hardware_model", "firmware_version", "last_seen"],
        {"search": "search", "status": "status"},
    ),
    "alarms": (
        "/api/monitoring/alarms/",
        ["id", "gateway_serial", "severity", "state", "code", "message", "last_raised_at"],
        {"search": "search", "state": "state"},
    ),
    "deployments": (
        "/api/deployments/",
        ["id", "name", "artifact_type", "status", "created"],
        {"search": "search", "status": "status"},
    ),
}
SESSION_COLUMNS = [
    "id",
    "gateway_serial",
    "target_label",
    "state",
    "requested_by",
    "expires_at",
    "bytes_up",
    "bytes_down",
]


def _login(args: argparse.Namespace) -> int:
    url = (args.url or os.environ.get("GRIDFLEET_URL") or input("Server URL: ")).rstrip("/")
    username = args.username or input("Username: ")
    password = os.environ.get("GRIDFLEET_PASSWORD") or getpass.getpass("Password: ")
    answer = request(url, "POST", "/api/accounts/token/", {"username": username, "password": password})
    path = save_login(url, answer["token"])
    print(f"Logged in to {url} as {username}; token saved in {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    path, columns, filters = LISTS[args.command]
    query = {api: getattr(args, option) for option, api in filters.items()}
    show(Server.configured().list(path, **query), columns, as_json=args.json)
    return 0


def _gateway_id(server: Server, serial: str) -> int:
    found = [g for g in server.list("/api/inventory/gateways/", search=serial) if g["serial"] == serial]
    if not found:
        raise CliError(f"no gateway {serial} that you may see")
    return int(found[0]["id"])


def _tunnel_open(args: argparse.Namespace) -> int:
    server = Server.configured()
    body: dict[str, Any] = {
        "gateway": _gateway_id(server, args.gateway),
        "reason": args.reason,
        "kind": "serial" if args.serial else "tcp",
        "target": args.serial or args.target,
    }
    if not body["target"]:
        raise CliError("give --target DEVICE_OR_HOST:PORT, or --serial PORT")
    if args.serial:
        bytesize, parity, stopbits = args.framing[0], args.framing[1], args.framing[2:]
        body["serial"] = {
            "baudrate": args.baud,
            "bytesize": int(bytesize),
            "parity": parity.upper(),
            "stopbits": float(stopbits) if "." in stopbits else int(stopbits),
        }
    if args.duration:
        body["duration_minutes"] = args.duration
    session = server.call("POST", "/api/remote-access/sessions/", body)
    ending = open_tunnel(server, session, args.local, sys.stdout)
    print(f"Session {session['id']} ended: {ending}")
    final = server.call("GET", f"/api/remote-access/sessions/{session['id']}/")
    up, down = human_bytes(final["bytes_up"]), human_bytes(final["bytes_down"])
    print(f"{up} up, {down} down, {final['connections']} connections")
    return 0


def _tunnel_ls(args: argparse.Namespace) -> int:
    rows = Server.configured().list("/api/remote-access/sessions/")
    if not args.all:
        rows = [r for r in rows if r["state"] in ("awaiting_approval", "opening", "active")]
    show(rows, SESSION_COLUMNS, as_json=args.json)
    return 0


def _tunnel_close(args: argparse.Namespace) -> int:
    session = Server.configured().call("POST", f"/api/remote-access/sessions/{args.id}/close/")
    print(f"Session {session['id']} {session['state']}: {session['end_reason']}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="gridfleet", description=__doc__.splitlines()[0] if __doc__ else None)
    top.add_argument("--version", action="version", version=__version__)
    commands = top.add_subparsers(dest="command", required=True)

    login = commands.add_parser("login", help="get an API token and save it")
    login.add_argument("--url", help="server URL (default GRIDFLEET_URL)")
    login.add_argument("--username")
    login.set_defaults(run=_login)

    for name, (_, _, filters) in LISTS.items():
        group = commands.add_parser(name, help=f"{name} you may see").add_subparsers(dest="action", required=True)
        ls = group.add_parser("ls", help=f"list {name}")
        ls.add_argument("--json", action="store_true", help="JSON instead of a table")
        for option in filters:
            ls.add_argument(f"--{option}")
        ls.set_defaults(run=_list)

    tunnel = commands.add_parser("tunnel", help="maintenance tunnels").add_subparsers(dest="action", required=True)
    opening = tunnel.add_parser("open", help="open a session and forward a local port to the target")
    opening.add_argument("gateway", metavar="GATEWAY", help="the gateway's serial")
    opening.add_argument("--target", default="", help="DEVICE, DEVICE:PORT or HOST:PORT on the allow-list")
    opening.add_argument("--serial", metavar="PORT", help="a serial port on the allow-list, e.g. /dev/ttyS1")
    opening.add_argument("--baud", type=int, default=9600)
    opening.add_argument("--framing", default="8N1", help="data bits, parity, stop bits (default 8N1)")
    opening.add_argument("--local", type=int, required=True, metavar="PORT", help="listen on 127.0.0.1:PORT (0: any)")
    opening.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    opening.add_argument("--duration", type=int, metavar="MINUTES", help="default: the organization's maximum")
    opening.set_defaults(run=_tunnel_open)
    ls = tunnel.add_parser("ls", help="your organizations' open sessions")
    ls.add_argument("--all", action="store_true", help="ended sessions too")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=_tunnel_ls)
    closing = tunnel.add_parser("close", help="close a session")
    closing.add_argument("id")
    closing.set_defaults(run=_tunnel_close)
    return top


def _interrupted(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupted)  # a service manager's stop closes the session too
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CliError as e:
        print(f"gridfleet: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
