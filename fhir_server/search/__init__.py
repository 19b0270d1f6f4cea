"""Search: turning FHIR search parameters into store criteria."""
