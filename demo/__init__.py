"""The demo: a monitored service, real exporters and Prometheus, and Bastion.

``./scripts/demo`` (or ``python -m demo``) starts it all; docs/demo.md
describes what runs and how to trigger a breach.
"""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
DEMO_VAR_DIR = REPOSITORY / "var" / "demo"
STATE_FILE = DEMO_VAR_DIR / "state.json"
