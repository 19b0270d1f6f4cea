"""JSON Patch (http.html#patch): applied to the stored version and validated like an update."""

from __future__ import annotations

import httpx

from tests.factories import patient

PATCH = {"Content-Type": "application/json-patch+json"}


def test_patch_applies_and_versions(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "male"}, {"op": "add", "path": "/active", "value": True}]
    response = client.patch(f"/Patient/{pid}", json=ops, headers=PATCH)
    assert response.status_code == 200
    assert response.json()["gender"] == "male" and response.json()["active"] is True
    assert response.headers["etag"] == 'W/"2"'


def test_failed_test_op_is_422_and_changes_nothing(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    ops = [{"op": "test", "path": "/gender", "value": "male"}, {"op": "replace", "path": "/gender", "value": "other"}]
    response = client.patch(f"/Patient/{pid}", json=ops, headers=PATCH)
    assert response.status_code == 422
    assert client.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_patch_that_breaks_the_resource_is_400(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    for ops in ([{"op": "replace", "path": "/id", "value": "other"}],
                [{"op": "add", "path": "/favouriteColour", "value": "blue"}],
                [{"op": "replace", "path": "/gender", "value": "not-a-gender"}]):
        response = client.patch(f"/Patient/{pid}", json=ops, headers=PATCH)
        assert response.status_code == 400, (ops, response.text)
    assert client.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_patch_needs_json_patch_content_type_and_a_list(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    wrong_type = client.patch(f"/Patient/{pid}", json=[{"op": "remove", "path": "/gender"}])
    assert wrong_type.status_code == 415
    not_list = client.patch(f"/Patient/{pid}", json={"op": "remove"}, headers=PATCH)
    assert not_list.status_code == 400
    assert client.patch("/Patient/missing", json=[], headers=PATCH).status_code == 404


def test_patch_with_stale_if_match_is_412(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert client.patch(f"/Patient/{pid}", json=ops, headers={**PATCH, "If-Match": 'W/"2"'}).status_code == 412
    assert client.patch(f"/Patient/{pid}", json=ops, headers={**PATCH, "If-Match": 'W/"1"'}).status_code == 200
