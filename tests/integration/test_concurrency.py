"""Optimistic locking (http.html#concurrency): with the same If-Match exactly one of many writers wins,
and without If-Match no update is lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import RunningServer
from tests.factories import patient

WRITERS = 20


def test_twenty_updates_with_the_same_if_match_exactly_one_succeeds(server: RunningServer) -> None:
    base = server.url + "/fhir"
    pid = httpx.post(f"{base}/Patient", json=patient()).json()["id"]

    def put(i: int) -> int:
        body = patient(id=pid, family=f"Writer{i}")
        return httpx.put(f"{base}/Patient/{pid}", json=body, headers={"If-Match": 'W/"1"'}, timeout=60).status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = list(pool.map(put, range(WRITERS)))
    assert statuses.count(200) == 1, statuses
    assert statuses.count(412) == WRITERS - 1, statuses
    current = httpx.get(f"{base}/Patient/{pid}").json()
    assert current["meta"]["versionId"] == "2"


def test_twenty_updates_without_if_match_all_land_as_distinct_versions(server: RunningServer) -> None:
    base = server.url + "/fhir"
    pid = httpx.post(f"{base}/Patient", json=patient()).json()["id"]

    def put(i: int) -> str:
        response = httpx.put(f"{base}/Patient/{pid}", json=patient(id=pid, family=f"Writer{i}"), timeout=60)
        assert response.status_code == 200, response.text
        return str(response.json()["meta"]["versionId"])

    with ThreadPoolExecutor(WRITERS) as pool:
        versions = list(pool.map(put, range(WRITERS)))
    assert sorted(versions, key=int) == [str(v) for v in range(2, WRITERS + 2)]
    history = httpx.get(f"{base}/Patient/{pid}/_history", params={"_count": 100}).json()
    families = {e["resource"]["name"][0]["family"] for e in history["entry"]}
    assert {f"Writer{i}" for i in range(WRITERS)} <= families  # every write is kept in history


def test_concurrent_conditional_creates_make_one_resource(server: RunningServer) -> None:
    base = server.url + "/fhir"
    body = patient(identifier=[{"system": "urn:test", "value": "same"}])

    def post(_: int) -> int:
        return httpx.post(f"{base}/Patient", json=body, headers={"If-None-Exist": "identifier=urn:test|same"},
                          timeout=60).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(post, range(10)))
    assert statuses.count(201) == 1, statuses
    assert statuses.count(200) == 9, statuses
