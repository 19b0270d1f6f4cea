"""Small builders for test resources."""

from __future__ import annotations

from typing import Any


def patient(family: str = "Mokoena", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["Thandi"]}], "gender": "female",
            "birthDate": "1984-03-12", **extra}


def observation(subject: str, value: Any = 72, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": subject},
            "valueQuantity": {"value": value, "unit": "beats/minute", "system": "http://unitsofmeasure.org",
                              "code": "/min"}, **extra}
