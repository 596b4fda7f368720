"""In Debian's chromium: an alarm raised by a gateway appears in the console without a reload, and an
operator acknowledges it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from fleet.accounts.roles import Role
from fleet.monitoring.lifecycle import AlarmState
from fleet.monitoring.models import Alarm
from tests.factories import GatewayFactory, member
from tests.monitoring.helpers import alarm, batch, hello

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    # Playwright's sync API keeps an event loop in this thread; the test's ORM calls are still
    # plain synchronous calls between browser steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(10_000)
        yield page
        browser.close()


def test_operator_sees_a_new_alarm_live_and_acknowledges_it(
    asgi_server: str, page: Any, organization: Any, enroll_gateway: Any
) -> None:
    enrolled = enroll_gateway(GatewayFactory(organization=organization))
    operator = member(organization, Role.OPERATOR)
    base = f"http://{asgi_server}"

    page.goto(f"{base}/login/?next=/monitoring/alarms/")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/monitoring/alarms/")
    page.wait_for_selector("#live-status:text('live')")
    assert page.locator("text=No alarms match.").count() == 1
    page.evaluate("window.loadedOnce = true")  # survives only if the page is not reloaded

    with connect(
        f"ws://{asgi_server}/ws/gateway/v1/", additional_headers={"Authorization": f"Bearer {enrolled.access_token()}"}
    ) as gateway:
        gateway.send(json.dumps(hello()))
        assert json.loads(gateway.recv(timeout=5))["type"] == "welcome"
        gateway.send(json.dumps(batch("b1", alarm(1, code="sunspec.evt1.ground_fault", message="Ground fault"))))
        assert json.loads(gateway.recv(timeout=5))["stored"] == 1

    row = page.locator("tr[data-alarm-id]", has_text="sunspec.evt1.ground_fault")
    row.wait_for()
    assert page.evaluate("window.loadedOnce") is True
    assert row.locator("td.state").inner_text() == "Active, unacknowledged"
    assert enrolled.gateway.serial in row.inner_text()

    row.locator("input[name=ids]").check()
    page.fill("#bulk-form input[name=comment]", "looking into it")
    page.click("#bulk-acknowledge")
    page.wait_for_selector("text=Acknowledged 1 alarm(s).")
    acknowledged = page.locator("tr[data-alarm-id]", has_text="sunspec.evt1.ground_fault")
    assert acknowledged.locator("td.state").inner_text() == "Active, acknowledged"

    stored = Alarm.objects.get()
    assert stored.state == AlarmState.ACTIVE_ACKNOWLEDGED and stored.acknowledged_by == operator
    assert stored.transitions.last().comment == "looking into it"
