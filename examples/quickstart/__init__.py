"""Quickstart: payments from a Kafka topic into per-account balances, exactly once."""
