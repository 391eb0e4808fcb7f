"""The inspector page in a real headless browser: Debian's chromium."""

from __future__ import annotations

import logging
import os
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pakat_logging import PakatHandler, Sender
from pakat_logging.testing import FakePakatServer

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed; pip install -e '.[dev]'",
)
expect = sync_api.expect

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not at /usr/bin/chromium; .ci/run "
    "installs it (apt-get install chromium)",
)

# Flags that keep the browser off the network beyond loopback and away
# from the GPU, which a CI container does not have.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

KEY = "inspector-browser-key-4321"

SCREENSHOT = Path(__file__).parents[1] / "docs" / "inspector.png"
UPDATE_SCREENSHOT = "PAKAT_UPDATE_SCREENSHOT"

# Milliseconds any one state of the page may take to show.
WAIT = 10_000


@pytest.fixture
def server() -> Iterator[FakePakatServer]:
    """A fake tracker with its inspector."""
    with FakePakatServer(KEY, inspector=True) as fake:
        yield fake


@pytest.fixture
def app(server: FakePakatServer) -> Iterator[logging.Logger]:
    """An app's logger whose marked records go to the fake tracker."""
    sender = Sender(KEY, url=server.url, timeout=2.0, shutdown_timeout=5.0)
    handler = PakatHandler(sender=sender)
    logger = logging.getLogger("shop.inspector_test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    logger.removeHandler(handler)
    sender.close(5.0)


@pytest.fixture
def blocked() -> list[str]:
    """The addresses beyond loopback that the page tried to load."""
    return []


@pytest.fixture
def page(tmp_path: Path, blocked: list[str]) -> Iterator[Any]:
    """A page in a fresh headless chromium that reaches loopback only."""
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.route("**/*", lambda route: _loopback_only(route, blocked))
        try:
            yield context.new_page()
        finally:
            context.close()


def _loopback_only(route: Any, blocked: list[str]) -> None:
    host = urllib.parse.urlsplit(route.request.url).hostname
    if host in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        blocked.append(route.request.url)
        route.abort()


def sender_of(app: logging.Logger) -> Sender:
    """Return the sender behind the app's handler."""
    # pytest adds its own capturing handlers beside ours.
    (handler,) = [h for h in app.handlers if isinstance(h, PakatHandler)]

    return handler.sender


def track(
    app: logging.Logger, message: str, email: str, **marker: Any
) -> None:
    """Log one marked record, as the app would."""
    app.info(message, extra={"pakat": marker, "email": email})


class TestInspectorPage:
    def test_live_filters_failures_and_no_key(
        self,
        server: FakePakatServer,
        app: logging.Logger,
        page: Any,
        tmp_path: Path,
        blocked: list[str],
    ) -> None:
        """The page follows the app's calls live and switches a 503 on/off."""
        sender = sender_of(app)
        rows = page.locator("#rows tr.call")
        page.goto(server.inspector_url)
        page.evaluate("window.notReloaded = true")
        expect(page.locator("#link")).to_have_text("live", timeout=WAIT)

        self.send_first_calls(app, sender)

        expect(rows).to_have_count(3, timeout=WAIT)
        expect(rows.first).to_contain_text("reza@example.com")
        expect(rows.last).to_contain_text("order_completed")
        self.check_filters(page)

        failed = self.fail_and_recover(server, app, sender, page)

        assert sender.stats()["retried"] >= 2
        assert 2 <= failed
        expect(rows.first).to_contain_text("cart_updated")
        expect(rows.first).to_have_attribute("data-status", "204")

        self.show_a_body(page)
        self.save_screenshot(page, tmp_path)
        html = page.content()
        text = page.inner_text("body")

        assert [] == blocked
        assert KEY not in html
        assert KEY not in text
        assert "...4321" in text
        assert page.evaluate("window.notReloaded") is True

        page.click("#clear")

        expect(rows).to_have_count(0, timeout=WAIT)
        expect(page.locator("#empty")).to_be_visible()
        assert 4 == len(server.calls)

    def test_every_failure_switch(
        self, server: FakePakatServer, page: Any, blocked: list[str]
    ) -> None:
        """Each switch on the page sets its failure mode, with its option."""
        state = page.locator("#failure-state")
        page.goto(server.inspector_url)
        expect(page.locator("#link")).to_have_text("live", timeout=WAIT)
        modes = []

        page.fill("#retry-after", "3")
        page.click('button[data-mode="429"]')
        expect(state).to_contain_text("429", timeout=WAIT)
        modes.append(dict(server.failure))
        page.fill("#hold", "7")
        page.click('button[data-mode="hold"]')
        expect(state).not_to_contain_text("429", timeout=WAIT)
        modes.append(dict(server.failure))
        page.click('button[data-mode="drop"]')
        expect(state).to_contain_text("rop", timeout=WAIT)
        modes.append(dict(server.failure))
        page.click('button[data-mode="off"]')
        expect(state).to_have_text("Answering as usual.", timeout=WAIT)

        assert "429" == modes[0]["mode"]
        assert 3 == modes[0]["retry_after"]
        assert "hold" == modes[1]["mode"]
        assert 7 == modes[1]["delay"]
        assert "drop" == modes[2]["mode"]
        assert {"mode": "off"} == dict(server.failure)
        assert [] == blocked

    def send_first_calls(self, app: logging.Logger, sender: Sender) -> None:
        """Send three calls one after another, so their order is known."""
        track(
            app,
            "Order placed",
            "sara@example.com",
            event="order_completed",
            properties={"FIRSTNAME": "Sara"},
            eventdata={
                "id": "cart:1234",
                "data": {"total": 1_250_000, "items": [{"sku": "TEA-1"}]},
            },
        )
        assert sender.flush(10)
        track(app, "Checkout seen", "ali@example.com", page="Checkout")
        assert sender.flush(10)
        track(app, "Signed up", "reza@example.com", attributes={"SMS": "+98"})
        assert sender.flush(10)

    def check_filters(self, page: Any) -> None:
        """The e-mail and endpoint filters narrow the rows."""
        visible = page.locator("#rows tr.call:visible")

        page.fill("#filter-email", "SARA")
        expect(visible).to_have_count(1, timeout=WAIT)
        expect(visible.first).to_contain_text("order_completed")

        page.fill("#filter-email", "")
        page.select_option("#filter-endpoint", "trackPage")
        expect(visible).to_have_count(1, timeout=WAIT)
        expect(visible.first).to_contain_text("Checkout")
        expect(page.locator("#shown")).to_have_text("showing 1 of 3")

        page.select_option("#filter-endpoint", "")
        expect(visible).to_have_count(3, timeout=WAIT)

    def fail_and_recover(
        self,
        server: FakePakatServer,
        app: logging.Logger,
        sender: Sender,
        page: Any,
    ) -> int:
        """Switch 503 on, watch the app retry, switch it off; count fails."""
        state = page.locator("#failure-state")
        failures = page.locator(
            '#rows tr.call[data-status="503"]', has_text="cart_updated"
        )
        page.click('button[data-mode="503"]')
        expect(state).to_contain_text("Answering 503", timeout=WAIT)
        assert {"mode": "503"} == dict(server.failure)

        track(
            app,
            "Cart updated",
            "sara@example.com",
            event="cart_updated",
            eventdata={"id": "cart:1234"},
        )

        # A second 503 for the same call is the sender retrying it.
        expect(failures.nth(1)).to_be_visible(timeout=WAIT)
        counter = page.locator('.counter[data-endpoint="trackEvent"]')
        expect(counter.locator(".failed-count")).not_to_have_text(
            "0 failed", timeout=WAIT
        )
        page.click('button[data-mode="off"]')
        expect(state).to_have_text("Answering as usual.", timeout=WAIT)

        assert sender.flush(20)

        return int(failures.count())

    def show_a_body(self, page: Any) -> None:
        """Open the order's body, pretty-printed."""
        order = page.locator("#rows tr.call", has_text="order_completed")
        order.locator("button.show-body").click()
        body = page.locator("#rows tr.body:visible pre")

        expect(body).to_contain_text('"id": "cart:1234"', timeout=WAIT)
        expect(body).to_contain_text('"total": 1250000')

    def save_screenshot(self, page: Any, tmp_path: Path) -> None:
        """Take the README's screenshot; keep it when asked to update it."""
        shot = tmp_path / "inspector.png"
        page.screenshot(path=str(shot), full_page=True)

        if os.environ.get(UPDATE_SCREENSHOT) == "1":
            shutil.copyfile(shot, SCREENSHOT)
