"""Write side of search: one module per parameter type, each encoding selected FHIRPath nodes into the
stored values described in docs/search.md. Pure functions, no I/O; `encode` holds the shared helpers."""
