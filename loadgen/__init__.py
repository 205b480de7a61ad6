"""loadgen: distributed load testing for Ethereum-compatible permissioned chains (GoQuorum first)."""

__version__ = "0.1.0"
