"""Bad input gets an OperationOutcome with the right status, never a 500 or a partial write."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningServer, start_server
from tests.factories import patient


def assert_outcome(response: httpx.Response, status: int, text: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    assert text.lower() in response.text.lower()


@pytest.mark.parametrize("body, text", [
    (b"{not json", "not valid json"),
    (b"[1, 2]", "json object"),
    (b'"a string"', "json object"),
    (b"42", "json object"),
    (b"", "no body"),
    (b"\xff\xfe", "utf-8"),
    (b'{"resourceType": "Patient", "birthDate": NaN}', "not valid json"),
])
def test_malformed_bodies_are_400(client: httpx.Client, body: bytes, text: str) -> None:
    assert_outcome(client.post("/Patient", content=body), 400, text)


def test_deep_nesting_is_refused(client: httpx.Client) -> None:
    deep = b'{"resourceType":"Patient","extension":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert_outcome(client.post("/Patient", content=deep), 400, "nested")
    moderate = b'{"resourceType":"Patient","extension":' + b"[" * 80 + b"]" * 80 + b"}"
    assert_outcome(client.post("/Patient", content=moderate), 400, "nested")


def test_wrong_content_type_is_415(client: httpx.Client) -> None:
    response = client.post("/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"})
    assert_outcome(response, 415, "application/fhir+json")
    form = client.post("/Patient", content=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_outcome(form, 415)


def test_body_over_the_limit_is_413(mongodb_uri: str) -> None:
    from fhir_server.config import Settings

    from tests.conftest import database_name

    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off", max_body_bytes=2000))
    try:
        big = patient(text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">"
                            + "x" * 5000 + "</div>"})
        response = httpx.post(f"{running.url}/fhir/Patient", json=big)
        assert_outcome(response, 413)

        def chunks():  # no Content-Length: the limit still holds while streaming
            for _ in range(10):
                yield b" " * 500

        streamed = httpx.post(f"{running.url}/fhir/Patient", content=chunks(),
                              headers={"Content-Type": "application/fhir+json"})
        assert_outcome(streamed, 413)
        assert httpx.get(f"{running.url}/fhir/Patient/_history").json()["entry"] == []
    finally:
        running.stop()


def test_resource_type_mismatch_unknown_type_and_id_mismatch(client: httpx.Client) -> None:
    assert_outcome(client.post("/Patient", json={"resourceType": "Observation"}), 400, "Observation")
    assert_outcome(client.post("/Patient", json={"name": []}), 400, "resourceType")
    assert_outcome(client.post("/Spaceship", json={"resourceType": "Spaceship"}), 404, "Spaceship")
    assert_outcome(client.get("/Spaceship/1"), 404, "Spaceship")
    assert_outcome(client.put("/Patient/a", json=patient(id="b")), 400, "differs")
    assert_outcome(client.put("/Patient/a", json=patient()), 400, "id")


def test_invalid_ids_are_400(client: httpx.Client) -> None:
    assert_outcome(client.get("/Patient/" + "x" * 65), 400, "not a valid resource id")
    assert_outcome(client.put("/Patient/bad_id!", json=patient(id="bad_id!")), 400, "not a valid resource id")


def test_invalid_resources_are_400_with_the_element_path(client: httpx.Client) -> None:
    response = client.post("/Patient", json=patient(favouriteColour="blue"))
    assert_outcome(response, 400)
    assert "favouriteColour" in str(response.json()["issue"][0].get("expression"))
    assert_outcome(client.post("/Patient", json=patient(gender="xx")), 400)
    assert_outcome(client.post("/Patient", json=patient(birthDate="1990-13-45")), 400)
    assert_outcome(client.post("/Patient", json=patient(active="yes")), 400)
    assert_outcome(client.post("/Observation", json={"resourceType": "Observation", "status": "bogus",
                                                     "code": {"text": "x"}}), 400)
    assert client.get("/Patient/_history").json()["entry"] == []  # nothing half-written


def test_unknown_routes_are_404_and_wrong_methods_405(client: httpx.Client) -> None:
    assert_outcome(client.get("/Patient/1/_history/1/extra"), 404)
    assert_outcome(client.post("/Patient/1"), 405)
    assert_outcome(client.request("PATCH", "/metadata"), 405)


def test_bad_if_match_is_400_and_stale_if_match_412(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    assert_outcome(client.put(f"/Patient/{pid}", json=patient(id=pid), headers={"If-Match": "banana"}), 400, "If-Match")
    assert_outcome(client.put(f"/Patient/{pid}", json=patient(id=pid), headers={"If-Match": 'W/"7"'}), 412)
    assert_outcome(client.delete(f"/Patient/{pid}", headers={"If-Match": 'W/"7"'}), 412)
    assert client.get(f"/Patient/{pid}").status_code == 200


def test_server_survives_a_burst_of_garbage(server: RunningServer) -> None:
    base = server.url + "/fhir"
    for body in (b"\x00" * 100, b"{" * 100, b'{"resourceType":' * 50, b"[]" * 1000):
        response = httpx.post(f"{base}/Patient", content=body, headers={"Content-Type": "application/fhir+json"})
        assert 400 <= response.status_code < 500
    assert httpx.get(f"{server.url}/health").status_code == 200
