"""Remote maintenance tunnels, the gateway's end (docs/protocol/tunnel.md, docs/remote-access.md)."""

from gridfleet_agent.tunnel.policy import AllowList, Target, TunnelRefused, TunnelRequest, authorize, parse_request
from gridfleet_agent.tunnel.service import TunnelService

__all__ = ["AllowList", "Target", "TunnelRefused", "TunnelRequest", "TunnelService", "authorize", "parse_request"]
