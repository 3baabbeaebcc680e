"""Interactive Brokers: connection, contracts, market data, depth, account (ib_insync)."""
