"""Playwright (Python) driving Debian's Chromium (/usr/bin/chromium, no browser download): one browser per test
module, a fresh phone context per test (390×844, touch, Indonesian locale, Jakarta time), and accessibility checks
with the vendored axe-core. A test module imports `browser_fixture` and `phone_fixture` to use the fixtures
`browser` and `phone`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
AXE_SOURCE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
#: any request not to this machine (map tiles from the default OpenStreetMap setting, say) is aborted in the browser:
#: tests send no traffic beyond loopback, and the app must work without the tiles
LEAVES_THIS_MACHINE = re.compile(r"^(?!(https?|wss?)://(127\.\d+\.\d+\.\d+|localhost|\[::1\])[:/])[a-z]+://")
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "id-ID",
    "timezone_id": "Asia/Jakarta",
}

#: an officer's desk screen (the workbench); a context made with new_phone(browser, **DESK)
DESK: dict[str, Any] = {
    "viewport": {"width": 1280, "height": 800},
    "device_scale_factor": 1,
    "is_mobile": False,
    "has_touch": False,
}


def chromium_path() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail("Debian chromium is required in CI (scripts/install-system-deps installs it)")
    pytest.skip("chromium is not installed (apt-get install -y chromium, or scripts/install-system-deps)")


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            # nothing phones home: no component updates, no QUIC probing
            args=["--disable-quic", "--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        launched.close()


def new_phone(browser: Any, **options: Any) -> Any:
    """A phone's browser context (PHONE, with `options`) that reaches only this machine."""
    context = browser.new_context(**{**PHONE, **options})
    context.set_default_timeout(15_000)
    context.route(LEAVES_THIS_MACHINE, lambda route: route.abort())
    return context


@pytest.fixture(name="phone")
def phone_fixture(browser: Any) -> Iterator[Any]:
    """A phone's browser context: fresh storage (no reports, no outbox, no service worker) for each test."""
    context = new_phone(browser)
    yield context
    context.close()


def serious_accessibility_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now. The source is evaluated through the
    DevTools protocol, which the page's Content-Security-Policy does not apply to (a script tag would be blocked)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


def wait_until_image_shows(image: Any) -> None:
    """Wait until an <img> has finished loading, and fail if it is broken.

    Not `page.wait_for_function`: it polls by evaluating a string in the page, which the
    pages' CSP (no 'unsafe-eval') refuses whenever the condition is not already true.
    """
    from playwright.sync_api import expect

    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 0, "the image loaded broken"
