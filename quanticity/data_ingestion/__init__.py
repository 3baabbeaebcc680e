"""Data ingestion: the demo quote generator, the AlphaVantage client and its helpers."""
