"""The agent's field stack fixtures (agent/tests/field/fixtures.py) for the server contract test."""

from agent.tests.field.fixtures import device_entry, simulator, sink  # noqa: F401
