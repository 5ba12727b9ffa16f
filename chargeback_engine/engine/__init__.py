"""The allocation engine: kernel decisions per key, applied in bulk by a data plane."""
