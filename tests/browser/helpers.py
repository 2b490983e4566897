"""Helpers of the browser tests: a daphne server and signed-in pages.

pytest-django's live_server speaks WSGI only, so these tests start daphne on a
free loopback port against the test database.
"""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from devstack.processes import free_port, port_is_open

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# A Redis database of its own, so other test runs on this server do not
# receive these messages, move this counter or take these Celery tasks.
LIVE_REDIS_URL = "redis://127.0.0.1:6379/6"
PASSWORD = "viewer-password-1"
UPDATE_TIMEOUT_MS = 5000
LAPTOP = {"width": 1400, "height": 800}
PHONE = {"width": 390, "height": 844}


class DaphneServer:
    """daphne serving bastion.asgi on one port, which can be stopped and restarted."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "BASTION_DATABASE_URL": database_url,
            "BASTION_REDIS_URL": LIVE_REDIS_URL,
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1"]
        command += ["-p", str(self.port), "bastion.asgi:application"]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not port_is_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.process.stderr.read() if self.process.stderr else b""
                raise RuntimeError(
                    f"daphne did not listen on {self.url}: {output.decode()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def sign_in(
    browser: Any,
    server: DaphneServer,
    user: Any,
    path: str = "/",
    init_script: str | None = None,
    viewport: dict[str, int] | None = None,
) -> Any:
    """Open a new browser context, sign in and wait for the live badge."""
    page = browser.new_context(viewport=viewport or LAPTOP).new_page()
    if init_script:
        page.add_init_script(init_script)
    page.goto(f"{server.url}/login/?next={path}")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{server.url}{path}")
    return page


def expect_status(page: Any, text: str) -> None:
    expect(page.locator("#live-status")).to_have_text(
        text, timeout=UPDATE_TIMEOUT_MS * 3
    )
