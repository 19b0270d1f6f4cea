"""`fhir-server token`: get an access token as a SMART backend service (client_credentials with a signed JWT
assertion, private_key_jwt), e.g. for `FHIR_TOKEN=$(fhir-server token …) fhir-server load …`.

Why in the CLI: a backend token needs an RS384/ES384-signed assertion, which curl cannot make; this is the
smallest honest client of the server's own token endpoint (found through
`{base}/.well-known/smart-configuration`, as SMART clients find it). Only the token goes to stdout.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from fhir_server.auth.accounts import KEY_ALGORITHMS

PROG = "fhir-server token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SECONDS = 300  # SMART: exp no more than five minutes ahead


class TokenError(Exception):
    pass


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("token", help="get an access token as a backend client (private_key_jwt)")
    parser.add_argument("--client-id", required=True, help="the backend client's id")
    parser.add_argument("--key", required=True, type=Path,
                        help="the client's private JWK (or a JWKS holding one), RS384 or ES384")
    parser.add_argument("--url", default="http://localhost:8080/fhir", help="the FHIR base URL")
    parser.add_argument("--scope", default="system/*.rs", help='scopes to ask for (default "system/*.rs")')
    parser.add_argument("--json", action="store_true", help="print the whole token response")
    parser.set_defaults(run=run)


def load_key(path: Path) -> RSAKey | ECKey:
    """The private signing key in `path`, with its `kid` and an `alg` the server accepts."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise TokenError(f"{path}: cannot read a JWK ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("keys"), list):
        private = [k for k in data["keys"] if isinstance(k, dict) and "d" in k]
        if len(private) != 1:
            raise TokenError(f"{path}: the JWKS must hold exactly one private key")
        data = private[0]
    if not isinstance(data, dict) or "d" not in data:
        raise TokenError(f"{path}: not a private JWK")
    alg = data.get("alg")
    if alg not in KEY_ALGORITHMS or not data.get("kid"):
        raise TokenError(f"{path}: the key needs a kid and alg RS384 or ES384")
    try:
        return RSAKey.import_key(data) if KEY_ALGORITHMS[alg] == "RSA" else ECKey.import_key(data)
    except (ValueError, TypeError, KeyError, JoseError) as exc:
        raise TokenError(f"{path}: not a usable {alg} key ({exc})") from None


def assertion(key: RSAKey | ECKey, client_id: str, token_url: str) -> str:
    alg = str(key.get("alg"))
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now, "exp": now + ASSERTION_SECONDS,
              "jti": secrets.token_urlsafe(24)}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def fetch_token(http: httpx.Client, base: str, client_id: str, key: RSAKey | ECKey, scope: str) -> dict[str, Any]:
    config = http.get(f"{base.rstrip('/')}/.well-known/smart-configuration")
    if config.status_code != 200:
        raise TokenError(f"{base}/.well-known/smart-configuration answered {config.status_code}")
    token_url = config.json().get("token_endpoint")
    if not isinstance(token_url, str):
        raise TokenError("the server's smart-configuration names no token_endpoint")
    response = http.post(token_url, data={"grant_type": "client_credentials", "scope": scope,
                                          "client_assertion_type": ASSERTION_TYPE,
                                          "client_assertion": assertion(key, client_id, token_url)})
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        reason = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
        raise TokenError(f"the token endpoint answered {response.status_code}: {reason or response.text[:200]}")
    return body


def run(args: argparse.Namespace) -> int:
    try:
        key = load_key(args.key)
        with httpx.Client(timeout=30) as http:
            body = fetch_token(http, args.url, args.client_id, key, args.scope)
    except TokenError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"{PROG}: cannot reach {args.url} ({exc})", file=sys.stderr)
        return 1
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() if args.json else body["access_token"])
    if not args.json:
        print(f"(scope {body.get('scope')}, expires in {body.get('expires_in')} s)", file=sys.stderr)
    return 0
