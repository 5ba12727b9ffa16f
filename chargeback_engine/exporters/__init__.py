"""Built-in exporters (plugins) and the atomic output writer."""
