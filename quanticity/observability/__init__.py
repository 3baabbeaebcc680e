"""Metrics, logs and dashboards."""
