"""Quanticity test suite (a regular package: eventkit, an ib_insync dependency, installs a top-level `tests`)."""
