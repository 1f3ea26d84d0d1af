"""The benchmark suite: ``python -m benchmarks`` (README, Benchmarks)."""

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
