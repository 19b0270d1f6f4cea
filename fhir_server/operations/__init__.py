"""FHIR operations (`$name`): one module per operation."""
