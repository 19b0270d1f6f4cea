"""SMART on FHIR 2.x: the authorization server (authlib), scopes, launch context, accounts and the
enforcement the FHIR API applies on every request. docs/smart.md is the user-facing description."""
