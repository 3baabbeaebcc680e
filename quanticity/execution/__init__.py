"""Order routing, idempotent placement and position reconciliation."""
