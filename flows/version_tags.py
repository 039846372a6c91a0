"""The tags the registry writes on a registered model and its versions, read back by registration,
the alias lifecycle and `vr registry list`."""
from __future__ import annotations

METRIC_TAG = "metric."  # version tag `metric.<name>`: an evaluation metric, readable without its run
HISTORY_TAG = "champion_history"  # registered-model tag: JSON list of champion versions, walked by rollback
# Version tag `registration`: `pending` from creation until every tag and alias is set, then `complete`.
REGISTRATION_TAG, PENDING, COMPLETE = "registration", "pending", "complete"
