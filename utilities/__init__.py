"""Operational helpers shared by tests, benchmarks and make targets."""
