"""Benchmarks and their inputs: a seeded synthetic FOCUS month, behind ``chargeback bench``."""
