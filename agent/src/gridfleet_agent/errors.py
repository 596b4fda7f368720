"""The root of the agent's own errors.

Every exception the agent raises on purpose derives from ``AgentError``, so a gateway
integration (or the daemon's top level) can tell "the agent refused or failed, and says why"
from a programming error with one ``except AgentError``. The subclasses live next to the code
that raises them (``ConfigError`` in ``config``, ``InstallError`` in ``installers.runner``, ...);
``code`` is a short machine-readable reason where the protocol reports one.
"""

from __future__ import annotations


class AgentError(Exception):
    """Something the agent refused or could not do; the message says what and why."""

    code: str = "agent_error"
