"""The `fhir-server` command: one module per subcommand (serve, load, clients, users, token); settings
are read only by the subcommand that needs them."""

from __future__ import annotations

import argparse
import sys

from fhir_server.cli import clients, load, serve, token, users


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fhir-server", description="FHIR R4 server on MongoDB")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(commands)
    load.add_parser(commands)
    clients.add_parser(commands)
    users.add_parser(commands)
    token.add_parser(commands)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
