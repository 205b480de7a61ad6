"""Benchmark scripts: each prints figures; BENCHMARKS.md records them with their command."""
