"""Simulators for the Gridfleet gateway agent: development, demos and tests, never a production gateway.

- ``gridfleet_agent_simulators.sunspec``: a SunSpec Modbus device (inverter, meter, battery) and a
  simulated DER site, served over Modbus TCP or RTU (``python -m gridfleet_agent_simulators.sunspec``).
- ``gridfleet_agent_simulators.fleet``: N real agents in one process, each with a simulated field
  device (``gridfleet-agent simulate``).

Installed with ``pip install gridfleet-agent[simulators]`` (from a checkout: ``pip install
./agent/simulators``); the agent itself does not depend on this package.
"""

__version__ = "0.1.0"
