"""The `fastbp` command (also `python -m fastbp`). Each subcommand is a module in
fastbp.commands with `HELP`, `add_arguments(parser)` and `run(args) -> exit code`.

Errors are one clear line on stderr and a nonzero exit, never a traceback. Output into a
pipe that closes early (`fastbp info | head -1`) ends quietly, with the status of a process
ended by SIGPIPE, as Unix tools do.
"""
import argparse
import importlib
import os
import signal
import sys

SUBCOMMANDS = ("train", "info", "bench", "gradcheck", "explain")


class _Parser(argparse.ArgumentParser):
    def error(self, message):           # one line, exit 2 (argparse's usage dump is noise here)
        self.exit(2, f"fastbp: error: {message}\n")


def build_parser():
    from fastbp import __version__
    parser = _Parser(prog="fastbp", description="Train multilayer perceptrons by backpropagation.")
    parser.add_argument("--version", action="version", version=f"fastbp {__version__}")
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
        status = args.run(args) or 0
        sys.stdout.flush()              # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return 128 + signal.SIGPIPE
    except (ValueError, TypeError, OSError, FloatingPointError, MemoryError, ImportError) as e:
        print(f"fastbp {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastbp {args.command}: interrupted", file=sys.stderr)
        return 130


def _quiet_stdout():
    """Point stdout at /dev/null: the interpreter's last flush then has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
