"""Turn sandra-api's faults on and off while the demo runs.

    python -m demo.control latency 0.85       # add 0.85 s to every API request
    python -m demo.control errors 0.2         # answer 20 % of requests with 500
    python -m demo.control throttle 0.3       # answer 30 % of requests with 429
    python -m demo.control failed-logins 30 --ip 203.0.113.7
    python -m demo.control reset              # back to a healthy service
    python -m demo.control status            # faults, ready replicas, latency factor

The service's URL comes from the state file that ``python -m demo`` writes
(var/demo/state.json), so no port needs remembering.
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from demo import STATE_FILE
from demo.sandra_api import Faults


class ControlFailed(RuntimeError):
    pass


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write the demo's state file (URLs of the running parts) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    temporary.replace(path)


def read_service_url(state_file: Path) -> str:
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        raise ControlFailed(
            f"{state_file} not found: start the demo first with ./scripts/demo"
        ) from None
    return str(state["sandra_api_url"])


def control_body(arguments: argparse.Namespace) -> dict[str, Any] | None:
    """Return the POST /control body for a command, or None for ``status``."""
    if arguments.command == "latency":
        return {"latency_seconds": arguments.seconds}
    if arguments.command == "errors":
        return {"error_rate": arguments.fraction}
    if arguments.command == "throttle":
        return {"throttle_rate": arguments.fraction}
    if arguments.command == "failed-logins":
        body: dict[str, Any] = {"failed_logins_per_second": arguments.per_second}
        if arguments.ip:
            body["attacker_ip"] = arguments.ip
        return body
    if arguments.command == "reset":
        return asdict(Faults())
    return None


def send(url: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """Send ``body`` to sandra-api's /control (or read it when None)."""
    try:
        if body is None:
            response = httpx.get(f"{url}/control", timeout=5)
        else:
            response = httpx.post(f"{url}/control", json=body, timeout=5)
    except httpx.HTTPError as error:
        raise ControlFailed(
            f"sandra-api at {url} did not answer ({error}): is the demo running?"
        ) from None
    if response.status_code == 400:
        raise ControlFailed(response.json()["error"])
    response.raise_for_status()
    return dict(response.json())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo.control",
        description="Set sandra-api's faults in the running demo.",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=STATE_FILE,
        help=f"the demo's state file (default {STATE_FILE})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    latency = commands.add_parser("latency", help="add latency to API requests")
    latency.add_argument("seconds", type=float, help="added latency in seconds")
    errors = commands.add_parser("errors", help="answer a share of requests with 500")
    errors.add_argument("fraction", type=float, help="0..1, e.g. 0.2")
    throttle = commands.add_parser("throttle", help="answer a share with 429")
    throttle.add_argument("fraction", type=float, help="0..1, e.g. 0.3")
    logins = commands.add_parser("failed-logins", help="send failed logins")
    logins.add_argument("per_second", type=float, help="failed logins per second")
    logins.add_argument("--ip", help="the attacker's address, sent as X-Forwarded-For")
    commands.add_parser("reset", help="turn every fault off")
    commands.add_parser(
        "status",
        help="show the current faults, the Deployment's ready replicas and the "
        "factor they apply to the added latency",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        url = read_service_url(arguments.state_file)
        state = send(url, control_body(arguments))
    except ControlFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
