"""`python -m fhir_server.cli …`"""

from __future__ import annotations

import sys

from fhir_server.cli import main

sys.exit(main())
