"""The utility link: IEEE 2030.5 / CSIP on the gateway, through py20305 (extra `gridfleet-agent[csip]`).

`UtilityLink` supervises py20305's `CsipClient` (discovery, registration, DER programs and events,
responses, MirrorUsagePoints); `FieldStackConnector` is the py20305 connector that applies
controls through the agent's one setpoint path in its SunSpec field stack. docs/utility-link.md.
"""

from gridfleet_agent.csip.config import CsipConfig, CsipConfigError, DerDevice
from gridfleet_agent.csip.link import LinkState, UtilityLink

__all__ = ["CsipConfig", "CsipConfigError", "DerDevice", "LinkState", "UtilityLink"]
