"""benchmarks_smoke tests."""
