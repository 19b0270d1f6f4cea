"""Search-value extraction cost per resource, against validation cost, over the official examples and the
Synthea resources (CPU time, best of 5 rounds). Extraction runs on every write, so it must stay well under
validation. Run: .venv/bin/python bench/bench_extract.py"""

from __future__ import annotations

import gzip
import json
import time
from decimal import Decimal
from pathlib import Path

from fhir_server.model.validate import ResourceValidator
from fhir_server.search.extract import Extractor
from fhir_server.search.registry import SearchRegistry

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fhir"


def resources() -> list[dict]:
    out = [json.loads(p.read_bytes(), parse_float=Decimal) for p in sorted((SHARED / "r4-examples").glob("*.json"))]
    for path in sorted((SHARED / "synthea").glob("*.json.gz")):
        out += [e["resource"] for e in json.loads(gzip.open(path).read(), parse_float=Decimal)["entry"]]
    return out


def best(fn, items: list[dict], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for item in items:
            fn(item)
        times.append(time.process_time() - start)
    return min(times) / len(items) * 1e6


def main() -> None:
    items = resources()
    extractor, validator = Extractor(SearchRegistry.official()), ResourceValidator()
    for r in items:
        extractor.extract(r["resourceType"], r)
    extract = best(lambda r: extractor.extract(r["resourceType"], r), items)
    validate = best(validator.validate, items, rounds=2)
    print(f"{len(items)} resources: extraction {extract:.0f} us, validation {validate:.0f} us per resource, "
          f"ratio {extract / validate:.2f}")


if __name__ == "__main__":
    main()
