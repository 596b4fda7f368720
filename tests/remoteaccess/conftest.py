"""The browser fixture of the end-to-end tests (Debian's chromium through Playwright)."""

from tests.e2e.conftest import browser

__all__ = ["browser"]
