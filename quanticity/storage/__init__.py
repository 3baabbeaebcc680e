"""Hot storage (Redis TimeSeries, metadata hashes)."""
