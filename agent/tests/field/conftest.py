from .fixtures import device_entry, simulator, sink  # noqa: F401 - fixtures for this folder
