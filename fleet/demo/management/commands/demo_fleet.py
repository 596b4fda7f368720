"""`manage.py demo_fleet`: the demo fleet, an admin, a CA, a TUF repository and a rollout; then the server on
HOST:PORT with simulated gateway agents (each with a simulated SunSpec inverter) talking to it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from typing import Any

import uvicorn
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from fleet.csip.headend import HeadEnd
from fleet.csip.utility_pki import test_utility_pki
from fleet.demo import services as demo

CSIP_PORT_OFFSET = 443  # the demo head-end listens on PORT + 443 (8443 next to 8000)
DNP3_PORT_OFFSET, IEC104_PORT_OFFSET = 12000, 12001  # one simulated gateway's SCADA outstations (20000, 20001)


class Command(BaseCommand):
    help = "Create a demo fleet and admin user, then start the server with simulated gateways (development only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--agents", type=int, default=6, help="Simulated gateway agents to run (0 for none).")
        # The side ports default to offsets from --port (8443, 20000, 20001 next to 8000); a caller that
        # picked --port at random (tests) names them too, since an offset can leave the port range.
        parser.add_argument("--csip-port", type=int, help=f"CSIP head-end port (default PORT + {CSIP_PORT_OFFSET}).")
        parser.add_argument("--dnp3-port", type=int, help=f"DNP3 outstation port (default PORT + {DNP3_PORT_OFFSET}).")
        parser.add_argument(
            "--iec104-port", type=int, help=f"IEC 104 outstation port (default PORT + {IEC104_PORT_OFFSET})."
        )
        parser.add_argument("--no-serve", action="store_true", help="Only create the data.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_fleet is for development; it refuses to run with DEBUG off.")
        credentials = demo.ensure_demo_admin()
        admin = get_user_model().objects.get(username=credentials.username)
        gateways = demo.ensure_demo_fleet()
        demo.ensure_demo_memberships(admin)
        demo.ensure_identity_and_repository()
        deployment = demo.ensure_demo_rollout(admin=admin, now=timezone.now())
        url = f"http://{options['host']}:{options['port']}"
        agents = gateways[: options["agents"]]
        self.stdout.write(
            self.style.SUCCESS(
                f"\nGridfleet demo: {len(gateways)} gateways in 2 organizations, "
                f"{len(agents)} of them simulated and live;"
                f"\n  rollout '{deployment.name}' starts with a canary.\n"
                f"  Open {url}/ and log in as  {credentials.username} / {credentials.password}\n"
                f"  REST API docs: {url}/api/docs/\n"
            )
        )
        if options["no_serve"]:
            return
        headend = self._start_headend(
            host=options["host"], port=options["csip_port"] or options["port"] + CSIP_PORT_OFFSET
        )
        if agents:
            controls = demo.ensure_demo_curtailment(gateways=agents, admin=admin, now=timezone.now())
            self.stdout.write(
                f"  CSIP head-end (IEEE 2030.5, mutual TLS) on {headend.url}/sep2/dcap; a curtailment to "
                f"{controls[0].max_lim_pct} % starts at {controls[0].start:%H:%M:%S} UTC: watch a gateway's page\n"
            )
        if agents:
            dnp3_port = options["dnp3_port"] or options["port"] + DNP3_PORT_OFFSET
            iec104_port = options["iec104_port"] or options["port"] + IEC104_PORT_OFFSET
            demo.ensure_demo_scada(
                gateway=agents[0], host=options["host"], dnp3_port=dnp3_port, iec104_port=iec104_port
            )
            self.stdout.write(
                f"  {agents[0].serial} serves SCADA: DNP3 outstation {options['host']}:{dnp3_port} (address 10, "
                f"MESA-DER map) and IEC 104 on {options['host']}:{iec104_port}; see docs/field-devices.md\n"
            )
        if agents:
            demo.ensure_demo_remote_access(gateways=agents)
            self.stdout.write(
                f"  Remote access: every simulated gateway allows a tunnel to its inverter's Modbus port; e.g. "
                f"gridfleet tunnel open {agents[0].serial} --target {agents[0].serial}-INV1 --local 1502 "
                f"--reason demo (docs/remote-access.md)\n"
            )
        simulator = self._start_agents(agents, admin=admin, server_url=url) if agents else None
        # uvicorn re-raises SIGTERM once it has shut down; exiting through SystemExit instead lets the
        # simulated agents be stopped below rather than orphaned.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        settings.GRIDFLEET_UPDATE_POLL_SECONDS = demo.DEMO_POLL_SECONDS  # this process serves the demo only
        try:
            uvicorn.run("fleet.asgi:application", host=options["host"], port=options["port"], log_level="info")
        finally:
            if simulator is not None:
                simulator.terminate()
                simulator.wait(10)
            headend.stop()

    def _start_headend(self, *, host: str, port: int) -> HeadEnd:
        """The demo's utility server, in this process; agents learn its address from /gw/v1/csip/certificate."""
        settings.GRIDFLEET_CSIP_HOST, settings.GRIDFLEET_CSIP_PORT = host, port
        # Short rates so a control scheduled in the UI reaches the gateways within half a minute.
        settings.GRIDFLEET_CSIP_POLL_RATE, settings.GRIDFLEET_CSIP_POST_RATE = 20, 30
        return HeadEnd(pki=test_utility_pki(now=timezone.now()), host=host, port=port).start()

    def _start_agents(self, agents: list[Any], *, admin: Any, server_url: str) -> subprocess.Popen[bytes]:
        """`gridfleet-agent simulate` in its own process; it waits for the server and enrolls with the tokens."""
        tokens = demo.write_enrollment_tokens(gateways=agents, admin=admin)
        config = demo.write_agent_config(server_url=server_url)
        executable = shutil.which("gridfleet-agent", path=str(sys.executable.rsplit("/", 1)[0])) or "gridfleet-agent"
        return subprocess.Popen(
            [
                executable,
                "--config",
                str(config),
                "simulate",
                "--count",
                str(len(agents)),
                "--tokens",
                str(tokens),
                "--field",
                "sunspec",
                "--telemetry-interval",
                "10",
            ]
        )
