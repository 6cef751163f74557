"""Benchmarks run by hand (not in CI); see docs/PERFORMANCE.md."""
