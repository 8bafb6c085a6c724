"""``python -m mlkube up``: see embedded.up. Cluster commands: ``python -m mlkube.deploy``."""

from __future__ import annotations

import argparse
import sys

from embedded import up as embedded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlkube", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    embedded.add_parser(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
