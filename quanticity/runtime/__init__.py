"""The embedded runtime: broker and Redis Stack child processes, health probes."""
