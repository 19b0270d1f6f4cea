"""Persistence: the resource store protocol and its MongoDB implementation (no web framework here)."""
