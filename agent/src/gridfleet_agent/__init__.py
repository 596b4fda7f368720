"""Gridfleet gateway agent: enrollment, uplink, TUF-verified updates with A/B rollback, store-and-forward.

The public API is what ``__all__`` lists (documented in agent/README.md); everything else is
internal and may change between versions. The field protocol stack has its own public API in
``gridfleet_agent.field`` (extra ``field``), the utility link in ``gridfleet_agent.csip`` (extra
``csip``); the simulators are a separate distribution (extra ``simulators``).
"""

__version__ = "0.1.0"

# Imported after __version__: the modules below read it while this package is being initialised.
from gridfleet_agent.config import AgentConfig, ConfigError, load_config, parse_config
from gridfleet_agent.daemon import Agent
from gridfleet_agent.errors import AgentError
from gridfleet_agent.identity import Identity, IdentityError, enroll
from gridfleet_agent.installers.registry import (
    ENTRY_POINT_GROUP,
    InstallerContext,
    InstallerFactory,
    InstallerLoadError,
    InstallerNotFoundError,
)
from gridfleet_agent.installers.runner import (
    Installer,
    InstallError,
    InstallJob,
    InstallRunner,
    Outcome,
    Result,
    Step,
    UpdateBusyError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Agent",
    "AgentConfig",
    "AgentError",
    "ConfigError",
    "Identity",
    "IdentityError",
    "InstallError",
    "InstallJob",
    "InstallRunner",
    "Installer",
    "InstallerContext",
    "InstallerFactory",
    "InstallerLoadError",
    "InstallerNotFoundError",
    "Outcome",
    "Result",
    "Step",
    "UpdateBusyError",
    "__version__",
    "enroll",
    "load_config",
    "parse_config",
]
