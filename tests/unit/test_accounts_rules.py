"""The account rules in auth/accounts.py that need no database: scopes per client kind, redirect URIs, JWKS
checks, and the roles table in docs/accounts.md kept in step with auth/roles.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from fhir_server.auth import accounts, roles
from fhir_server.auth.accounts import AccountError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("scope", "kind", "user_facing"), [
    ("launch/patient openid fhirUser patient/*.rs", "public", None),
    ("user/*.cruds patient/Observation.rs?category=http://x|vital-signs offline_access", "confidential", None),
    ("patient/*.read user/*.write", "public", None),
    ("system/*.rs system/Claim.cruds", "backend", None),
    ("system/*.rs openid user/*.rs", "backend", True),  # a backend client with redirect URIs
])
def test_scopes_accepted(scope: str, kind: str, user_facing: bool | None) -> None:
    assert accounts.check_scope(scope + " " + scope.split()[0], kind, user_facing) == scope  # de-duplicated


@pytest.mark.parametrize(("scope", "kind", "message"), [
    ("", "public", "at least one"),
    ("patient/*.xyz", "public", "not a SMART scope"),
    ("patient/*.dus", "public", "not a SMART scope"),  # v2 letters out of order
    ("admin", "public", "not a SMART scope"),
    ("patient/Observation.rs?_has:Patient=x", "public", "cannot constrain"),
    ("system/*.rs", "confidential", "backend clients"),
    ("user/*.rs", "backend", "only system/"),
    ("system/*.rs launch", "backend", "launch/identity"),
])
def test_scopes_refused(scope: str, kind: str, message: str) -> None:
    with pytest.raises(AccountError, match=re.escape(message)) as caught:
        accounts.check_scope(scope, kind)
    assert caught.value.field == "scope"


@pytest.mark.parametrize("uri", ["https://app.example.org/cb", "http://localhost:9000/cb", "http://127.0.0.1/cb",
                                 "http://[::1]:8000/cb", "https://app.example.org/cb?x=1"])
def test_redirect_uris_accepted(uri: str) -> None:
    assert accounts.check_redirect_uri(uri, "confidential") == uri


def test_private_use_schemes_only_for_public_clients() -> None:
    assert accounts.check_redirect_uri("com.example.app:/callback", "public") == "com.example.app:/callback"
    with pytest.raises(AccountError):
        accounts.check_redirect_uri("com.example.app:/callback", "confidential")


@pytest.mark.parametrize("uri", ["http://app.example.org/cb", "https://app.example.org/cb#frag", "/relative",
                                 "https://app.example.org/*", "javascript:alert(1)", "https://a b/cb",
                                 "https://host:99999/cb", "ftp://host/cb"])
def test_redirect_uris_refused(uri: str) -> None:
    with pytest.raises(AccountError):
        accounts.check_redirect_uri(uri, "public")


def test_origins_have_no_path() -> None:
    assert accounts.check_origin("https://app.example.org/") == "https://app.example.org"
    with pytest.raises(AccountError, match="origin"):
        accounts.check_origin("https://app.example.org/page")


def _ec() -> ECKey:
    return ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"}, private=True, auto_kid=True)


def test_jwks_keeps_public_members_only() -> None:
    key = _ec().as_dict(private=False)
    rsa = RSAKey.generate_key(2048, parameters={"alg": "RS384"}, private=True, auto_kid=True).as_dict(private=False)
    checked = accounts.check_jwks({"keys": [{**key, "x-note": "dropped"}, rsa]})
    assert checked == {"keys": [key, rsa]}


@pytest.mark.parametrize(("change", "message"), [
    ({"d": "AAAA"}, "private key material"),
    ({"kid": None}, "kid"),
    ({"alg": "ES256"}, "RS384 or ES384"),
    ({"alg": "RS384"}, "needs kty RSA"),
    ({"crv": "P-256"}, "P-384"),
    ({"use": "enc"}, "sig"),
    ({"x": "bm90LWEtcG9pbnQ"}, "not a valid EC public key"),
])
def test_bad_keys_refused(change: dict[str, object], message: str) -> None:
    key = {**_ec().as_dict(private=False), **change}
    key = {k: v for k, v in key.items() if v is not None}
    with pytest.raises(AccountError, match=re.escape(message)):
        accounts.check_jwks({"keys": [key]})


def test_bad_key_sets_refused() -> None:
    key = _ec().as_dict(private=False)
    for jwks, message in (([key], "Key Set"), ({"keys": []}, "1 to"), ({"keys": [key, key]}, "same kid"),
                          ({"keys": [key] * 11}, "1 to"), ({"keys": ["x"]}, "not a JSON object")):
        with pytest.raises(AccountError, match=re.escape(message)):
            accounts.check_jwks(jwks)


def test_fhir_user_and_patient_links() -> None:
    assert accounts.check_fhir_user("Practitioner/p-1", "doctor") == "Practitioner/p-1"
    assert accounts.check_patient_id("Patient/abc") == "abc"
    for value, role in (("Patient/1", "doctor"), ("Practitioner/1", "patient"), ("Practitioner/", "nurse"),
                        ("Practitioner/a b", "nurse"), ("http://x/Practitioner/1", "nurse")):
        with pytest.raises(AccountError):
            accounts.check_fhir_user(value, role)


def test_docs_roles_table_matches_the_roles() -> None:
    text = (ROOT / "docs" / "accounts.md").read_text()
    section = text.split("The roles", 1)[1].split("\n\n", 2)[1]
    documented = re.findall(r"^\| `([a-z ]+)` \|", section, re.MULTILINE)
    assert documented == list(roles.ROLES)
