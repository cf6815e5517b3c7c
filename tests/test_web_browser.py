"""The dashboard page in a real browser: headless chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.browser

TOKEN = "browser-test-token"
XSS = "<script>alert(1)</script>"
IMG_XSS = "<img src=x onerror=alert(2)>"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
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

SERVER_SCRIPT = textwrap.dedent(
    '''
    import sys
    from typing import Any

    from ttflow_async import RunContext, event_trigger, setup
    from ttflow_async.web import serve

    store, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    client = setup(store)


    @client.workflow()
    async def greet(c: RunContext, args: dict[str, Any]) -> None:
        """Greet someone by name."""
        await c.log(f"hello {args['name']}")


    @client.workflow(trigger=event_trigger("order_placed"))
    async def on_order(c: RunContext, args: Any) -> None:
        """Count the orders."""
        await c.set_state("orders", (await c.get_state("orders", 0)) + 1)


    @client.workflow(trigger="start_approval")
    async def approval(c: RunContext) -> None:
        """Wait for an approval."""
        await c.wait_event("approve")


    @client.workflow(trigger="start_delivery")
    async def delivery(c: RunContext) -> Any:
        """Wait for the courier's callback."""
        cb = await c.create_callback(name="delivered", timeout=3600)
        return await cb.result()


    @client.workflow(trigger="start_checkout")
    async def checkout(c: RunContext) -> None:
        """Greet the customer through a child run."""
        await c.invoke(greet, {"name": "customer"})


    serve(client, host="127.0.0.1", port=port, token=token)
    '''
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    """A dashboard server in a subprocess on 127.0.0.1; yields its base URL."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(script), f"local:{tmp_path / 'state.json'}", str(port), TOKEN],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base_url, tmp_path / "server.log")
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_until_serving(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    for _ in range(300):
        if process.poll() is not None:
            pytest.fail(f"the dashboard server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/api/status", trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the dashboard server did not start:\n{log.read_text()}")


def test_the_page_shows_workflows_fires_a_trigger_and_renders_data_as_text(
    dashboard: str, tmp_path: Path
) -> None:
    from playwright.sync_api import ConsoleMessage, Dialog, Error, expect, sync_playwright

    dialogs: list[str] = []
    console_errors: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    def on_page_error(error: Error) -> None:
        console_errors.append(str(error))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("dialog", on_dialog)
            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            page.goto(dashboard)

            workflows = page.locator("#workflows")
            for name in ["greet", "on_order", "approval"]:
                expect(workflows).to_contain_text(name)
            expect(workflows).to_contain_text("Greet someone by name.")
            expect(page.locator("#writes-pill")).to_have_text("writes: token required")
            expect(page.locator("#trigger-form button.write")).to_be_disabled()
            expect(page.locator("#history")).to_contain_text("No finished runs yet.")

            page.fill("#token", TOKEN)
            page.click("#token-form button[type=submit]")
            expect(page.locator("#trigger-form button.write")).to_be_enabled()

            page.fill("#trigger-name", "greet")
            page.fill("#trigger-args", json.dumps({"name": XSS}))
            page.click("#trigger-form button.write")
            expect(page.locator("#action-result")).to_contain_text("succeeded")

            history_rows = page.locator("#history tr")
            expect(history_rows).to_have_count(1)
            expect(history_rows.first).to_contain_text("greet")
            expect(history_rows.first).to_contain_text("succeeded")

            log_line = page.locator("#run-log li")
            expect(log_line).to_have_text(f"hello {XSS}")
            assert page.locator("#run-log script").count() == 0

            page.fill("#event-name", "order_placed")
            page.fill("#event-args", json.dumps({"note": IMG_XSS}))
            page.click("#event-form button.write")
            expect(page.locator("#events")).to_contain_text(IMG_XSS)
            assert page.locator("#events img").count() == 0

            expect(page.locator("#timeline svg circle.dot.succeeded")).to_have_count(2)
            expect(page.locator("#flow svg g.node.workflow")).to_have_count(5)
            expect(page.locator("#flow svg g.node.state")).to_have_count(1)
            expect(page.locator("#flow svg path.edge.invokes")).to_have_count(0)

            page.fill("#trigger-name", "start_checkout")
            page.fill("#trigger-args", "null")
            page.click("#trigger-form button.write")
            invokes = page.locator("#flow svg path.edge.invokes")
            expect(invokes).to_have_count(1)
            expect(invokes.locator("title")).to_have_text(
                "checkout invokes greet (1 traced child runs)"
            )
            expect(page.locator("#flow svg text.edge-label.invokes")).to_have_text("invokes ×1")
            assert invokes.get_attribute("marker-end") == "url(#invokes-arrow)"
            # The child run is not drawn as started by an event named after the engine.
            child_trace = page.locator("#traces li", has_text="← _invoke")
            expect(child_trace).to_contain_text("child of")
            sources = page.locator("#flow svg g.node > title").all_text_contents()
            assert "event: order_placed" in sources
            assert [name for name in sources if name.startswith("event: _")] == []

            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()

    assert dialogs == []
    assert console_errors == []


def test_cancel_and_complete_buttons_end_suspended_runs(dashboard: str) -> None:
    from playwright.sync_api import Dialog, expect, sync_playwright

    prompts: list[str] = []
    answers = ["operator said no", '{"by": "ana"}']

    def on_dialog(dialog: Dialog) -> None:
        prompts.append(dialog.message)
        dialog.accept(answers[len(prompts) - 1])

    for trigger in ["start_approval", "start_delivery"]:
        response = httpx.post(
            f"{dashboard}/api/trigger",
            json={"name": trigger},
            headers={"Authorization": f"Bearer {TOKEN}"},
            trust_env=False,
        )
        assert response.status_code == 200, response.text

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("dialog", on_dialog)
            page.goto(dashboard)

            suspended = page.locator("#suspended tr")
            expect(suspended).to_have_count(2)
            expect(page.locator("#suspended button.act")).to_have_count(0)

            page.fill("#token", TOKEN)
            page.click("#token-form button[type=submit]")
            approval = suspended.filter(has_text="approval")
            delivery = suspended.filter(has_text="delivery")
            expect(approval.locator("button.act")).to_have_text(["Cancel"])
            expect(delivery.locator("button.act")).to_have_text(["Cancel", "Complete", "Fail"])

            approval.locator("button.cancel").click()
            expect(page.locator("#action-result")).to_contain_text("Cancelled")
            expect(suspended).to_have_count(1)
            history = page.locator("#history tr")
            expect(history.filter(has_text="approval")).to_contain_text("cancelled")
            expect(history.filter(has_text="approval")).to_contain_text("operator said no")

            delivery.locator("button.complete").click()
            expect(page.locator("#action-result")).to_contain_text("succeeded")
            expect(page.locator("#suspended")).to_contain_text("Nothing is suspended.")
            expect(history.filter(has_text="delivery")).to_contain_text("succeeded")
        finally:
            browser.close()

    assert len(prompts) == 2
    assert "Reason" in prompts[0]
    assert "JSON result" in prompts[1]
    history_entries = httpx.get(f"{dashboard}/api/runs/history", trust_env=False).json()
    finished = {entry["workflow_name"]: entry for entry in history_entries}
    assert finished["approval"]["status"] == "cancelled"
    assert finished["delivery"]["result"] == {"by": "ana"}
