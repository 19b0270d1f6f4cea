"""history at instance, type and system level with _since, _at, _count and paging (http.html#history)."""

from __future__ import annotations

import time

import httpx

from tests.factories import patient


def _walk(client: httpx.Client, url: str) -> list[dict]:
    entries: list[dict] = []
    pages = 0
    while url:
        bundle = client.get(url).json()
        assert bundle["type"] == "history"
        entries.extend(bundle.get("entry", []))
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), "")
        pages += 1
        assert pages < 100
    return entries


def test_instance_history_lists_every_version_newest_first_with_request_and_response(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    client.put(f"/Patient/{pid}", json=patient(id=pid, gender="male"))
    client.delete(f"/Patient/{pid}")
    bundle = client.get(f"/Patient/{pid}/_history").json()
    entries = bundle["entry"]
    assert [e["response"]["etag"] for e in entries] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in entries] == ["DELETE", "PUT", "POST"]
    assert "resource" not in entries[0]
    assert entries[0]["response"]["status"].startswith("204")
    assert entries[2]["response"]["status"].startswith("201")
    assert entries[1]["resource"]["gender"] == "male"
    assert entries[2]["request"]["url"] == "Patient"


def test_type_and_system_history_page_with_count_without_repeats(client: httpx.Client) -> None:
    ids = [client.post("/Patient", json=patient(family=f"F{i}")).json()["id"] for i in range(7)]
    client.post("/Observation", json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    type_entries = _walk(client, "/Patient/_history?_count=3")
    assert len(type_entries) == 7
    assert {e["resource"]["id"] for e in type_entries} == set(ids)
    system_entries = _walk(client, "/_history?_count=2")
    assert len(system_entries) == 8
    assert len({e["fullUrl"] for e in system_entries}) == 8


def test_paging_is_stable_while_writes_go_on(client: httpx.Client) -> None:
    for i in range(5):
        client.post("/Patient", json=patient(family=f"P{i}"))
    first = client.get("/Patient/_history", params={"_count": 2}).json()
    seen = [e["resource"]["id"] for e in first["entry"]]
    client.post("/Patient", json=patient(family="late"))  # newer than the first page: never appears later
    url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    seen += [e["resource"]["id"] for e in _walk(client, url)]
    assert len(seen) == 5 and len(set(seen)) == 5


def test_since_and_at_select_by_time(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    time.sleep(0.05)
    middle = client.get(f"/Patient/{pid}").json()["meta"]["lastUpdated"]
    time.sleep(0.05)
    updated = client.put(f"/Patient/{pid}", json=patient(id=pid, gender="male")).json()
    since = client.get(f"/Patient/{pid}/_history", params={"_since": updated["meta"]["lastUpdated"]}).json()
    assert [e["response"]["etag"] for e in since["entry"]] == ['W/"2"']
    at = client.get(f"/Patient/{pid}/_history", params={"_at": middle}).json()
    assert [e["response"]["etag"] for e in at["entry"]] == ['W/"1"']
    bad = client.get(f"/Patient/{pid}/_history", params={"_since": "last tuesday"})
    assert bad.status_code == 400 and "_since" in bad.text


def test_count_zero_and_bad_count(client: httpx.Client) -> None:
    client.post("/Patient", json=patient())
    assert client.get("/Patient/_history", params={"_count": 0}).json().get("entry") == []
    assert client.get("/Patient/_history", params={"_count": "many"}).status_code == 400
    assert client.get("/Patient/_history", params={"_bogus": "1"}).status_code == 400
