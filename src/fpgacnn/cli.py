"""The `fpgacnn` command.

Each module in `fpgacnn.commands` is one subcommand: it defines `HELP` (one line),
`add_arguments(parser)` and `run(args)`. A `UserError` ends the command with one line on
stderr and exit status 2.
"""

import argparse
import importlib
import pkgutil
import sys

from fpgacnn import commands
from fpgacnn.errors import UserError


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _command_modules():
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    return {name.replace("_", "-"): importlib.import_module(f"fpgacnn.commands.{name}")
            for name in names if not name.startswith("_")}


def build_parser():
    parser = _OneLineParser(prog="fpgacnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    for name, module in _command_modules().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        status = args._run(args)
    except UserError as e:
        print(f"fpgacnn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head`: the reader is gone, nothing to report
        sys.stderr.close()
        return 0
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
