"""One exception type for every FHIR failure, rendered as an OperationOutcome.

Lower layers raise `FhirError` only; `rest/` turns it into a response. Issue codes come from
http://hl7.org/fhir/R4/valueset-issue-type.html.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_server.types import JSONObject


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: `expression` is a FHIRPath-style location such as `Patient.name[0]`."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_json(self) -> JSONObject:
        out: JSONObject = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out


@dataclass
class FhirError(Exception):
    """A failure with its HTTP status and the issues that explain it."""

    status: int
    issues: list[Issue]
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.issues[0].diagnostics if self.issues else str(self.status))

    def outcome(self) -> JSONObject:
        return operation_outcome(self.issues)


def operation_outcome(issues: list[Issue]) -> JSONObject:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def _one(status: int, code: str, diagnostics: str, expression: str | None = None, **kw: Any) -> FhirError:
    return FhirError(status, [Issue(code, diagnostics, expression=(expression,) if expression else ())], **kw)


def invalid(diagnostics: str, expression: str | None = None) -> FhirError:
    return _one(400, "invalid", diagnostics, expression)


def structure(diagnostics: str, expression: str | None = None) -> FhirError:
    return _one(400, "structure", diagnostics, expression)


def not_supported(diagnostics: str, status: int = 400) -> FhirError:
    return _one(status, "not-supported", diagnostics)


def forbidden(diagnostics: str) -> FhirError:
    return _one(403, "forbidden", diagnostics)


def not_found(diagnostics: str) -> FhirError:
    return _one(404, "not-found", diagnostics)


def gone(diagnostics: str, headers: dict[str, str] | None = None) -> FhirError:
    return _one(410, "deleted", diagnostics, headers=headers or {})


def conflict(diagnostics: str) -> FhirError:
    return _one(409, "conflict", diagnostics)


def precondition_failed(diagnostics: str) -> FhirError:
    return _one(412, "conflict", diagnostics)


def too_large(diagnostics: str) -> FhirError:
    return _one(413, "too-costly", diagnostics)


def unsupported_media_type(diagnostics: str) -> FhirError:
    return _one(415, "not-supported", diagnostics)


def not_acceptable(diagnostics: str) -> FhirError:
    return _one(406, "not-supported", diagnostics)


def unprocessable(diagnostics: str, expression: str | None = None) -> FhirError:
    return _one(422, "processing", diagnostics, expression)


def method_not_allowed(diagnostics: str) -> FhirError:
    return _one(405, "not-supported", diagnostics)


def unavailable(diagnostics: str) -> FhirError:
    return _one(503, "transient", diagnostics)
