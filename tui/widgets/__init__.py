"""The console's widgets, one per file, each with its DEFAULT_CSS."""
