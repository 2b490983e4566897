"""Signals other apps listen to, so the watchers app depends on none of them."""

from django.dispatch import Signal

# Sent after the transaction that opened the incident commits, with
# ``incident_id``. Not sent for data source incidents.
incident_opened = Signal()

# Sent after the transaction that resolved the incident commits, with
# ``incident_id``. Not sent for data source incidents.
incident_resolved = Signal()
