"""The `fastbp` command (also `python -m fastbp`). Each subcommand is a module in
fastbp.commands with `HELP`, `add_arguments(parser)` and `run(args) -> exit code`.

Errors are one clear line on stderr and a nonzero exit, never a traceback.
"""
import argparse
import importlib
import sys

SUBCOMMANDS = ("train", "info", "bench", "gradcheck", "explain")


class _Parser(argparse.ArgumentParser):
    def error(self, message):           # one line, exit 2 (argparse's usage dump is noise here)
        self.exit(2, f"fastbp: error: {message}\n")


def build_parser():
    parser = _Parser(prog="fastbp", description="Train multilayer perceptrons by backpropagation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"fastbp.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.error = _Parser.error.__get__(p)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except (ValueError, TypeError, OSError, FloatingPointError, MemoryError, ImportError) as e:
        print(f"fastbp {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastbp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
