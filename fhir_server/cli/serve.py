"""`fhir-server serve`: run the HTTP server (starting the embedded store unless `FHIR_MONGODB_URI` is set)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from fhir_server.config import Settings


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the HTTP server")
    parser.add_argument("--host", help="listen address (FHIR_HOST)")
    parser.add_argument("--port", type=int, help="listen port (FHIR_PORT)")
    parser.add_argument("--seed-demo", action="store_true",
                        help="load the demo patients into an empty store (FHIR_SEED_DEMO)")
    parser.set_defaults(run=run)


def _print_demo_help(settings: Settings) -> None:
    """Where the demo accounts' passwords are, and how to get a token (docs/accounts.md)."""
    from fhir_server.demo import accounts

    base = settings.base_url or f"http://localhost:{settings.port}/fhir"
    print(f"Demo accounts (admin, doctor, nurse, clerk, patient; clients {accounts.PUBLIC_CLIENT}, "
          f"{accounts.CONFIDENTIAL_CLIENT}, {accounts.BACKEND_CLIENT}): passwords and secrets in "
          f"{accounts.accounts_file(settings.data_dir)} (created on first start)")
    for line in accounts.how_to(base, settings.data_dir):
        print(f"  {line}")
    print(flush=True)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_server.app import create_app

    overrides: dict[str, Any] = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if args.seed_demo:
        overrides["seed_demo"] = True
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    where = settings.mongodb_uri or f"the embedded store in {settings.data_dir.resolve()}"
    print(f"FHIR R4 server on http://{settings.host}:{settings.port}/fhir (data: {where})", flush=True)
    if settings.seed_demo and settings.auth == "on":
        _print_demo_help(settings)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                proxy_headers=True)
    return 0
