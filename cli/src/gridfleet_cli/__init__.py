"""gridfleet: the operator's command line for a Gridfleet server (docs/remote-access.md)."""

__version__ = "0.1.0"
