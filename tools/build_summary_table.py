"""Generate fhir_server/model/data/summary.json: per resource type, the top-level elements that
`_summary=true` keeps (isSummary) and those every subset keeps (mandatory, min >= 1).

Source: the official R4 StructureDefinitions (CC0). Run: python tools/build_summary_table.py [SHARED_DIR]
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared")
bundle = json.load(gzip.open(shared / "fhir/r4-definitions/profiles-resources.json.gz"))
table: dict[str, dict[str, list[str]]] = {}
for entry in bundle["entry"]:
    sd = entry["resource"]
    if sd["resourceType"] != "StructureDefinition" or sd.get("kind") != "resource" or sd.get("abstract"):
        continue
    summary, mandatory = [], []
    for element in sd["snapshot"]["element"]:
        path = element["path"]
        parts = path.split(".")
        if len(parts) != 2:
            continue
        name = parts[1]
        if element.get("isSummary"):
            summary.append(name)
        if element.get("min", 0) >= 1:
            mandatory.append(name)
    table[sd["type"]] = {"summary": summary, "mandatory": mandatory}
out = Path(__file__).resolve().parent.parent / "fhir_server/model/data/summary.json"
out.write_text(json.dumps(table, separators=(",", ":"), sort_keys=True))
print(f"wrote {out} ({len(table)} types)")
