"""Narrow adapters around third-party converters: our artifact in, files out, nothing else leaks."""
