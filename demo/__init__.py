"""The demo: a monitored service, real exporters and Prometheus, and Bastion.

``./scripts/demo`` (or ``python -m demo``) starts it all; docs/demo.md
describes what runs and how to trigger a breach.
"""

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# BASTION_DEMO_VAR_DIR moves the demo's database, logs and state elsewhere,
# so a test can run the demo without touching a user's var/demo.
DEMO_VAR_DIR = Path(os.environ.get("BASTION_DEMO_VAR_DIR") or REPOSITORY / "var/demo")
STATE_FILE = DEMO_VAR_DIR / "state.json"
