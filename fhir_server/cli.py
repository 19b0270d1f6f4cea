"""The `fhir-server` command. `serve` runs the HTTP server (starting the embedded store unless
`FHIR_MONGODB_URI` is set); later commands (load, export, clients, users) join as subcommands."""

from __future__ import annotations

import argparse
import logging
import sys

from fhir_server.config import Settings


def _serve(settings: Settings) -> int:
    import uvicorn

    from fhir_server.app import create_app

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    where = settings.mongodb_uri or f"the embedded store in {settings.data_dir.resolve()}"
    print(f"FHIR R4 server on http://{settings.host}:{settings.port}/fhir (data: {where})", flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                proxy_headers=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fhir-server", description="FHIR R4 server on MongoDB")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="listen address (FHIR_HOST)")
    serve.add_argument("--port", type=int, help="listen port (FHIR_PORT)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    if args.command == "serve":
        return _serve(settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
