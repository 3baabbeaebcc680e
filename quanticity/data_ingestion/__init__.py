"""Ingestion sources (the demo quote generator now; AlphaVantage and IBKR later)."""
