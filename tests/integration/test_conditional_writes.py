"""Conditional create, update and delete with the spec's 0/1/many outcomes (http.html#ccreate, #cond-update,
#cdelete)."""

from __future__ import annotations

import httpx

from tests.factories import patient

SYSTEM = "https://www.polmed.co.za/member-number"


def member(number: str, **extra: object) -> dict:
    return patient(identifier=[{"system": SYSTEM, "value": number}], **extra)


def test_conditional_create_creates_once_then_returns_the_existing(client: httpx.Client) -> None:
    header = {"If-None-Exist": f"identifier={SYSTEM}|M-1"}
    first = client.post("/Patient", json=member("M-1"), headers=header)
    assert first.status_code == 201
    second = client.post("/Patient", json=member("M-1"), headers=header)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    history = client.get("/Patient/_history").json()
    assert len(history["entry"]) == 1


def test_conditional_create_with_many_matches_is_412(client: httpx.Client) -> None:
    client.post("/Patient", json=member("M-2"))
    client.post("/Patient", json=member("M-2"))
    response = client.post("/Patient", json=member("M-2"), headers={"If-None-Exist": f"identifier={SYSTEM}|M-2"})
    assert response.status_code == 412


def test_conditional_create_by_id_and_value_only(client: httpx.Client) -> None:
    client.put("/Patient/abc", json=member("M-3", id="abc"))
    assert client.post("/Patient", json=member("M-3"), headers={"If-None-Exist": "_id=abc"}).status_code == 200
    assert client.post("/Patient", json=member("M-3"), headers={"If-None-Exist": "identifier=M-3"}).status_code == 200


def test_conditional_criteria_that_are_not_supported_are_400_not_ignored(client: httpx.Client) -> None:
    response = client.post("/Patient", json=member("M-4"), headers={"If-None-Exist": "shoe-size=9"})
    assert response.status_code == 400
    assert "shoe-size" in response.json()["issue"][0]["diagnostics"]
    assert client.delete("/Patient?shoe-size=9").status_code == 400
    assert client.get("/Patient/_history").json()["entry"] == []


def test_conditional_writes_take_any_search(client: httpx.Client) -> None:
    header = {"If-None-Exist": "family=Mokoena&birthdate=1984-03-12"}
    assert client.post("/Patient", json=member("M-8"), headers=header).status_code == 201
    assert client.post("/Patient", json=member("M-9"), headers=header).status_code == 200
    updated = client.put("/Patient?family=mokoena&gender=female", json=member("M-8", active=True))
    assert updated.status_code == 200 and updated.json()["active"] is True


def test_conditional_update_creates_updates_or_refuses(client: httpx.Client) -> None:
    url = f"/Patient?identifier={SYSTEM}|M-5"
    created = client.put(url, json=member("M-5"))
    assert created.status_code == 201
    pid = created.json()["id"]
    updated = client.put(url, json=member("M-5", gender="male"))
    assert updated.status_code == 200
    assert updated.json()["id"] == pid and updated.json()["meta"]["versionId"] == "2"
    wrong_id = client.put(url, json=member("M-5", id="someone-else"))
    assert wrong_id.status_code == 400
    client.post("/Patient", json=member("M-5"))
    assert client.put(url, json=member("M-5")).status_code == 412


def test_conditional_delete_single_match_none_and_many(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=member("M-6")).json()["id"]
    assert client.delete(f"/Patient?identifier={SYSTEM}|M-6").status_code == 204
    assert client.get(f"/Patient/{pid}").status_code == 410
    assert client.delete(f"/Patient?identifier={SYSTEM}|M-6").status_code == 204  # nothing matches now
    client.post("/Patient", json=member("M-7"))
    client.post("/Patient", json=member("M-7"))
    assert client.delete(f"/Patient?identifier={SYSTEM}|M-7").status_code == 412
    assert client.delete("/Patient").status_code == 400  # no criteria: never "delete everything"
