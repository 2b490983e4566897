"""Time Bastion's evaluation cycle against Prometheus evaluating the same rules.

Run ``python -m bench.evaluation_cycle`` (add ``--write docs/benchmarks.md``
to write the page). It starts two exporters and a Prometheus on free loopback
ports, uses the database in BASTION_DATABASE_URL (default: bastion_bench on
the local PostgreSQL, created if missing), and stops everything it started on
exit, Ctrl-C included.
"""

import argparse
import logging
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

from bench.environment import prepare_django
from bench.pages import write_section
from bench.plan import Plan
from bench.stack import BenchStack


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.evaluation_cycle",
        description="Time Bastion's evaluation cycle for 100 to 5,000 watchers "
        "against a real Prometheus evaluating the same expressions as rules.",
    )
    parser.add_argument(
        "--write",
        metavar="PATH",
        type=Path,
        help="also write the results page (Markdown) to PATH, e.g. docs/benchmarks.md",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="run 100 and 1,000 watchers with fewer cycles and cases, to check "
        "that the benchmark works",
    )
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into the same unwinding as Ctrl-C, so the finally blocks
    # stop Prometheus and the exporters.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    plan = Plan.quick() if args.quick else Plan()
    arguments = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "bench.evaluation_cycle", *arguments])

    print("preparing the database", flush=True)
    prepare_django()
    # One line per evaluation and per opened incident would bury the tables.
    for name in ("watchers", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # bench.measure imports the models, which needs django.setup() first.
    from bench.measure import measure_all
    from bench.page import render_markdown
    from bench.report import render_text

    workdir = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    stack = BenchStack(workdir, max(plan.sizes))
    try:
        results = measure_all(plan, stack, command)
    except KeyboardInterrupt:
        print("interrupted; stopping Prometheus and the exporters", file=sys.stderr)
        return 130
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(render_text(results))
    if args.write is not None:
        write_section(args.write, "Evaluation cycle", render_markdown(results))
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
