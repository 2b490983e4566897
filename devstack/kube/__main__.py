"""Run the Kubernetes stand-in until SIGTERM or SIGINT.

Example: ``python -m devstack.kube --port 0 --kubeconfig /tmp/kubeconfig``
"""

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from devstack.kube.seed import default_seed, load_seed_file
from devstack.kube.server import KubeStandin

logger = logging.getLogger("devstack.kube")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.kube",
        description="Serve a local Kubernetes API stand-in on 127.0.0.1.",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port to listen on; 0 picks a free one"
    )
    parser.add_argument(
        "--kubeconfig", type=Path, required=True, help="kubeconfig file to write"
    )
    parser.add_argument(
        "--seed",
        type=Path,
        help="YAML or JSON file of objects to start with (default: sandra-api)",
    )
    parser.add_argument(
        "--token", help="bearer token that clients must send (default: none checked)"
    )
    parser.add_argument(
        "--ready-delay",
        type=float,
        default=1.0,
        help="seconds until each new pod becomes ready (default: 1.0)",
    )
    parser.add_argument(
        "--namespace", default="default", help="namespace of the kubeconfig context"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    seed = load_seed_file(arguments.seed) if arguments.seed else default_seed()
    standin = KubeStandin(
        port=arguments.port,
        token=arguments.token,
        seed=seed,
        ready_delay_seconds=arguments.ready_delay,
    )
    stop_requested = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop_requested.set())

    standin.start()
    standin.write_kubeconfig(arguments.kubeconfig, arguments.namespace)
    print(standin.url, flush=True)
    logger.info("Wrote kubeconfig %s", arguments.kubeconfig)
    stop_requested.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
