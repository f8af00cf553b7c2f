"""The shell every command-line tool runs in: parsing, exit codes, logging, quiet TensorFlow.

An entry point (``python -m mclcr_keras.<tool>``) builds its parser with `make_parser`, turns the
parsed arguments into one library call, and hands both to `run`:

```python
def main(argv=None) -> int:
    return cli.run(build_parser(), command, argv)
```

What `run` guarantees, identically for every tool (the table is in ``docs/cli.md``):

- ``--help`` exits 0; a bad flag or value prints ``<tool>: error: ... (see --help)`` and exits 2;
- `mclcr_keras.errors.UsageError` (bad option, missing input, output in the way; nothing was done)
  prints one line and exits 2; `Failure` exits with its code; Ctrl-C exits 130 without a
  traceback; any other exception prints one line (the traceback with ``--verbose``) and exits 1;
- logging: this package at INFO on stderr (DEBUG with ``--verbose``), everything else at WARNING;
- TensorFlow's native start-up lines (``cudart_stub``, ``failed call to cuInit``, absl's
  "before InitializeLog" warning) are filtered out while TensorFlow is first imported, and its
  C++ log level is WARNING-free; ``--verbose`` shows them all.

Libraries never import this module.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from mclcr_keras import quiet_tf
from mclcr_keras.errors import UsageError

PROG_PREFIX = "python -m mclcr_keras."
# The arguments after a standalone ``--`` (`accept_passthrough`), e.g. Beam's pipeline options.
PASSTHROUGH = "pipeline_args"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_DIVERGED = 4
EXIT_INTERRUPTED = 130

# One meaning per code, the same in every tool (docs/cli.md).
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "the work started and failed (e.g. a corrupt shard, a failed demo stage)",
    EXIT_USAGE: "nothing done: bad arguments, a missing input, or an output in the way",
    EXIT_PARTIAL: "finished, but some inputs failed (each listed with its reason)",
    EXIT_DIVERGED: "training stopped: the loss became NaN/inf (the last good epoch is kept)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
class Failure(Exception):
    """A runtime failure an entry point reports as one line and exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def one_line(error: BaseException | str, limit: int = 600) -> str:
    """The first non-empty line of an error message, whitespace collapsed."""
    text = str(error).strip()
    line = next((part for part in text.splitlines() if part.strip()), "")
    if not line and isinstance(error, BaseException):
        line = type(error).__name__
    return " ".join(line.split())[:limit]


def tool_name(prog: str) -> str:
    """``"python -m mclcr_keras.viz spectra"`` -> ``"viz spectra"``."""
    return prog[len(PROG_PREFIX):] if prog.startswith(PROG_PREFIX) else prog


def exit_status_epilog(codes: Sequence[int]) -> str:
    """The ``Exit status:`` sentence of a tool's ``--help``, from `EXIT_CODES`."""
    return "Exit status: " + "; ".join(f"{code} {EXIT_CODES[code]}" for code in codes) + "."


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``<tool>: error: <message> (see --help)``, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{tool_name(self.prog)}: error: {message} (see --help)\n")


def make_parser(tool: str, description: str, *, exits: Sequence[int] = (EXIT_OK, EXIT_FAILED,
                EXIT_USAGE, EXIT_INTERRUPTED), details: str = "",
                verbose: bool = True) -> Parser:
    """The parser of ``python -m mclcr_keras.<tool>`` with ``--verbose`` and the exit codes.

    Args:
        tool: the module name after ``mclcr_keras.``.
        description: the ``--help`` description.
        exits: the exit codes this tool uses (described in the epilog).
        details: extra epilog text (e.g. the outputs written, a docs page).
        verbose: add ``--verbose`` here (tools with subcommands add it to each subcommand).
    """
    epilog = " ".join(part for part in (details, exit_status_epilog(exits)) if part)
    parser = Parser(prog=PROG_PREFIX + tool, description=description, epilog=epilog)
    if verbose:
        add_verbose(parser)
    return parser


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="log this package at DEBUG and show TensorFlow's native log lines")


def configure_logging(verbose: bool = False) -> None:
    """This package at INFO (DEBUG if verbose) on stderr, the rest at WARNING, absl at ERROR.

    A process that already configured logging (a notebook, pytest) keeps its handlers.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    logging.getLogger("mclcr_keras").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("absl").setLevel(logging.INFO if verbose else logging.ERROR)


def import_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow without its native start-up lines (`mclcr_keras.quiet_tf`)."""
    quiet_tf.import_tensorflow(verbose)


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` cut at the first standalone ``--``: the tool's own arguments, and the rest
    (handed unchanged to an engine, e.g. Beam's pipeline options).

    >>> split_passthrough(["a", "--engine", "beam", "--", "--runner=DataflowRunner"])
    (['a', '--engine', 'beam'], ['--runner=DataflowRunner'])
    """
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def accept_passthrough(parser: argparse.ArgumentParser, what: str) -> None:
    """Lets ``parser``'s tool take arguments after ``--`` (``args.pipeline_args``)."""
    parser.set_defaults(**{PASSTHROUGH: ()})
    parser.epilog = f"{parser.epilog or ''} Arguments after a standalone -- go to {what}.".strip()


def run(
    parser: argparse.ArgumentParser,
    command: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
    *,
    check: Callable[[argparse.Namespace], None] | None = None,
    tensorflow: bool = True,
    interrupted: str = "",
) -> int:
    """Parses ``argv``, runs ``command(args)`` and returns the exit status (see the module doc).

    Args:
        parser: from `make_parser`.
        command: the tool's one library call; returns an exit status (``None`` = 0).
        argv: the arguments (default ``sys.argv[1:]``).
        check: cheap checks of the arguments (values, inputs, outputs) that raise `UsageError`;
            run before TensorFlow is imported, so a mistake is reported in a fraction of a second.
        tensorflow: import TensorFlow quietly before the command (tools that use it).
        interrupted: what the user can do after Ctrl-C, appended to ``<tool>: interrupted``.
    """
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    own, passed = split_passthrough(argv)
    try:
        args = parser.parse_args(own)
        if PASSTHROUGH in vars(args):
            setattr(args, PASSTHROUGH, tuple(passed))
        elif passed:
            parser.error(f"unrecognized arguments after --: {' '.join(passed)}")
    except SystemExit as exit_:  # --help (0) or a one-line argparse error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    tool = tool_name(parser.prog)
    command_name = getattr(args, "command", None)
    if command_name and not tool.endswith(command_name):
        tool = f"{tool} {command_name}"
    verbose = bool(getattr(args, "verbose", False))
    configure_logging(verbose)

    def error(message: str) -> None:
        sys.stdout.flush()
        print(f"{tool}: error: {message}", file=sys.stderr, flush=True)

    try:
        if check is not None:
            check(args)
        if tensorflow:
            import_tensorflow(verbose)
        status = command(args)
    except UsageError as usage:
        error(one_line(usage))
        return EXIT_USAGE
    except Failure as failure:
        error(one_line(failure))
        return failure.code
    except KeyboardInterrupt:
        sys.stdout.flush()
        hint = f"; {interrupted}" if interrupted else ""
        print(f"{tool}: interrupted{hint}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as unexpected:  # a bug or a broken install: one line, traceback on request
        if verbose:
            traceback.print_exc()
        error(f"{type(unexpected).__name__}: {one_line(unexpected)}"
              + ("" if verbose else " (rerun with --verbose for the traceback)"))
        return EXIT_FAILED
    sys.stdout.flush()
    return EXIT_OK if status is None else int(status)
