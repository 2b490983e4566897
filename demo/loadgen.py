"""Steady HTTP load on sandra-api, plus the failed logins that the control requests.

Requests are sent at a fixed rate whether or not earlier ones have returned,
as real users do, so added latency does not slow the traffic down: the
latency histogram keeps filling at the same rate and a breach shows quickly.

Run: ``python -m demo.loadgen --url http://127.0.0.1:8081``.
"""

import argparse
import logging
import queue
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from demo.sandra_api import DEMO_PASSWORD

logger = logging.getLogger(__name__)

# A user who mistypes a password now and then, so auth_failures_total has a
# series before any attack, at a rate far below the catalog's threshold.
MISTYPING_USER_IP = "198.51.100.20"
MISTYPE_EVERY_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_QUEUED = 100
REPORT_EVERY_SECONDS = 30.0
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


@dataclass
class Request:
    method: str
    path: str
    json: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


def item_request() -> Request:
    return Request("GET", "/api/items")


def login_request(good: bool, client_ip: str | None = None) -> Request:
    password = DEMO_PASSWORD if good else "wrong-password"
    headers = {"X-Forwarded-For": client_ip} if client_ip else {}
    body = {"username": "demo", "password": password}
    return Request("POST", "/login", json=body, headers=headers)


class LoadGenerator:
    """Sends requests at fixed rates from a pool of worker threads."""

    def __init__(self, url: str, rate_per_second: float, workers: int) -> None:
        self.url = url.rstrip("/")
        self.rate_per_second = rate_per_second
        self.workers = workers
        self.stopping = threading.Event()
        self.pending: queue.Queue[Request] = queue.Queue(maxsize=MAX_QUEUED)
        self.outcomes: Counter[str] = Counter()
        self.failed_logins_per_second = 0.0
        self.attacker_ip = ""

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._work, name=f"worker-{n}", daemon=True)
            for n in range(self.workers)
        ]
        threads.append(threading.Thread(target=self._follow_control, daemon=True))
        for thread in threads:
            thread.start()
        self._schedule()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT_SECONDS)
        logger.info("loadgen stopped; outcomes %s", dict(self.outcomes))

    def _schedule(self) -> None:
        tick_seconds = 0.05
        normal_due = attack_due = 0.0
        next_mistype = time.monotonic()
        while not self.stopping.wait(tick_seconds):
            normal_due += self.rate_per_second * tick_seconds
            attack_due += self.failed_logins_per_second * tick_seconds
            while normal_due >= 1:
                normal_due -= 1
                self._offer(self._normal_request())
            while attack_due >= 1:
                attack_due -= 1
                self._offer(login_request(good=False, client_ip=self.attacker_ip))
            if time.monotonic() >= next_mistype:
                next_mistype += MISTYPE_EVERY_SECONDS
                self._offer(login_request(good=False, client_ip=MISTYPING_USER_IP))

    def _normal_request(self) -> Request:
        if random.random() < 0.15:
            return login_request(good=True)
        return item_request()

    def _offer(self, request: Request) -> None:
        try:
            self.pending.put_nowait(request)
        except queue.Full:
            # Every worker is busy: drop the request rather than build a
            # backlog that would burst out when the latency falls.
            self.outcomes["dropped"] += 1

    def _work(self) -> None:
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            while not self.stopping.is_set():
                try:
                    request = self.pending.get(timeout=0.5)
                except queue.Empty:
                    continue
                self.outcomes[self._send(client, request)] += 1

    def _send(self, client: httpx.Client, request: Request) -> str:
        try:
            response = client.request(
                request.method, request.path, json=request.json, headers=request.headers
            )
        except httpx.HTTPError as error:
            return type(error).__name__
        return str(response.status_code)

    def _follow_control(self) -> None:
        # The control lives in sandra-api, so one POST /control changes both
        # the service's faults and this generator's failed logins.
        next_report = time.monotonic() + REPORT_EVERY_SECONDS
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while not self.stopping.wait(1.0):
                if time.monotonic() >= next_report:
                    next_report += REPORT_EVERY_SECONDS
                    logger.info("outcomes so far %s", dict(self.outcomes))
                try:
                    state = client.get("/control").json()
                except (httpx.HTTPError, ValueError) as error:
                    logger.warning("reading %s/control failed: %s", self.url, error)
                    continue
                self.failed_logins_per_second = float(state["failed_logins_per_second"])
                self.attacker_ip = str(state["attacker_ip"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="sandra-api base URL")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="normal requests per second"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=128,
        help="threads sending requests; at 50 requests/s (20 normal, 30 failed "
        "logins) and 2.5 s latency, 125 are in flight",
    )
    arguments = parser.parse_args()
    host = httpx.URL(arguments.url).host
    if host not in LOOPBACK_HOSTS:
        parser.error(f"--url {arguments.url} is not on loopback: use 127.0.0.1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # httpx logs every request at INFO, which is 20 lines a second here.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    generator = LoadGenerator(arguments.url, arguments.rate, arguments.workers)

    def stop(signum: int, frame: object) -> None:
        generator.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("loadgen sending %s requests/s to %s", arguments.rate, arguments.url)
    generator.run()


if __name__ == "__main__":
    main()
