"""The benchmark suite: ``python -m benchmarks`` (benchmarks/README.md)."""

import argparse
import contextlib
import sys

from argminn_plugin.errors import ArgminnError


@contextlib.contextmanager
def one_line_errors(prog):
    """A user mistake (ArgminnError) ends the program with one line, ``<prog>: error: ...``, and exit status 2,
    as ``argminn`` does."""
    try:
        yield
    except ArgminnError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)


def at_least(low):
    """An argparse type: an integer >= ``low`` (a negative seed or zero threads is one line from argparse,
    not a traceback from numpy or torch)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse
