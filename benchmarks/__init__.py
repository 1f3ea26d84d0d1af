"""The benchmark suite: ``python -m benchmarks`` (benchmarks/README.md)."""

import contextlib


@contextlib.contextmanager
def one_line_errors(prog):
    """As ``argminn`` ends (``argminn_plugin.cli.one_line_errors``): a user mistake or a file-system refusal is
    one line, ``<prog>: error: ...``, and exit status 2; a Ctrl-C or SIGTERM (raised where the run is, so
    its half-written files are cleaned up) one line and 130 or 143."""
    from argminn_plugin.cli import one_line_errors as command_errors, sigterm_raises

    with sigterm_raises(), command_errors(prog):
        yield


def at_least(low):
    """An argparse type: an integer >= ``low`` (a negative seed or zero threads is one line from argparse,
    not a traceback from numpy or torch), as argminn's own flags check it."""
    from argminn_plugin.cli import _int_at_least

    return lambda text: _int_at_least(text, low)
