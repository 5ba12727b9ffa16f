"""Benchmarks behind ``chargeback bench`` and their seeded synthetic inputs: figures are measured and printed, never asserted in tests."""
