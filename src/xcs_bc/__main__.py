"""Command line: `python -m xcs_bc demo` runs the demo; `python -m xcs_bc --help` lists the commands."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from xcs_bc.demo import latency_from_env, print_demo
from xcs_bc.errors import ConfigError

USAGE = """\
usage: python -m xcs_bc COMMAND

commands:
  demo    run an example legacy pipeline of fake model calls under xcs.capture()
          and print its dataflow graph and report (set XCS_BC_DEMO_LATENCY to the
          seconds each fake call takes; default 0.1)

options:
  -h, --help  show this message and exit"""

_HELP = ("-h", "--help", "help")


def _error(message: str) -> int:
    """Print the usage line and `message` to stderr, like argparse; return exit status 2."""
    print(f"{USAGE.splitlines()[0]}\nxcs_bc: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv` (default: `sys.argv[1:]`); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in _HELP:
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command != "demo":
        return _error(f"unknown command {command!r}; the only command is 'demo' (python -m xcs_bc --help)")
    if rest and rest[0] in _HELP:
        print(USAGE)
        return 0
    if rest:
        return _error(f"'demo' takes no arguments, got {' '.join(rest)!r}")
    try:
        latency = latency_from_env()
    except ConfigError as error:
        return _error(str(error))
    print_demo(latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
