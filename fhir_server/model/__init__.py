"""Resource types, validation and (later) custom resource definitions."""
