"""Benchmarks behind ``chargeback bench``: measured figures, never asserted in tests."""
