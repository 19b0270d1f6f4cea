"""Conditional read: If-None-Match and If-Modified-Since answer 304 (http.html#cread)."""

from __future__ import annotations

import httpx

from tests.factories import patient


def test_if_none_match_current_version_is_304(client: httpx.Client) -> None:
    created = client.post("/Patient", json=patient())
    pid = created.json()["id"]
    assert client.get(f"/Patient/{pid}", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get(f"/Patient/{pid}", headers={"If-None-Match": 'W/"0"'}).status_code == 200
    assert client.get(f"/Patient/{pid}", headers={"If-None-Match": "*"}).status_code == 304


def test_if_modified_since_is_304_unless_changed_after(client: httpx.Client) -> None:
    created = client.post("/Patient", json=patient())
    pid = created.json()["id"]
    stamp = created.headers["last-modified"]
    assert client.get(f"/Patient/{pid}", headers={"If-Modified-Since": stamp}).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(f"/Patient/{pid}", headers={"If-Modified-Since": old}).status_code == 200
    bad = client.get(f"/Patient/{pid}", headers={"If-Modified-Since": "yesterday"})
    assert bad.status_code == 400
