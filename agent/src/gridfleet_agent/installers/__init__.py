"""Installers by bundle type, driven by one persisted state machine (``runner.InstallRunner``)."""
