"""Benchmarks: `scripts/bench` runs `python -m bench.run`."""
