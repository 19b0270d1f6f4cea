"""The server's own signing key (RS256, for id_tokens) and the public JWKS published at /auth/jwks.

Why the key lives in MongoDB (AuthStore.signing_keys) and not in a file: every server process must sign
with a key the others publish, and an id_token must still verify after a restart. The first process to
start creates the key; a second one racing it loses the insert (the kid is the RFC 7638 thumbprint, so
the loser simply reloads) and uses the winner's. Rotation: add a newer key; the newest signs, all are
published, so tokens signed by an older key keep verifying until it is removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc.jwk import RSAKey

from fhir_server.db.auth_store import AuthStore

ID_TOKEN_ALG = "RS256"


@dataclass(frozen=True)
class SigningKeys:
    """The current signing key and every key to publish (public halves only leave this object)."""

    current: RSAKey
    all: tuple[RSAKey, ...]

    @property
    def kid(self) -> str:
        return str(self.current.kid)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS: bare JWKs with `kid`, `alg`, `use` (what OIDC relying parties and Inferno read)."""
        return {"keys": [{**k.as_dict(private=False), "alg": ID_TOKEN_ALG, "use": "sig"} for k in self.all]}


def _new_key() -> RSAKey:
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()  # the RFC 7638 thumbprint
    return key


async def load_or_create(store: AuthStore, now: datetime | None = None) -> SigningKeys:
    """The stored keys, creating the first one when there is none."""
    docs = await store.signing_keys()
    if not docs:
        key = _new_key()
        await store.add_signing_key(str(key.kid), key.as_dict(private=True), now or datetime.now(UTC))
        docs = await store.signing_keys()  # a concurrent starter may have won: use what is stored
    keys = tuple(RSAKey.import_key(doc) for doc in docs)
    return SigningKeys(keys[0], keys)
