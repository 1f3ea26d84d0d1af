"""User-facing errors.

Every problem caused by user input (a file, an array, a config key) is raised
as :class:`ArgminnError` with a one-line message that names the file, line or
field and says what was expected. The CLI prints it as a single line and exits
with status 2 instead of showing a traceback.
"""


class ArgminnError(ValueError):
    """A clear, one-line error about bad user input."""

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


class StartAgain(ArgminnError):
    """A refusal to continue the training run in a directory whose way out is a new run there (argminn's
    ``--force``, ``force=True`` in Python) or another output directory. A caller that has no ``--force``
    (the benchmarks) catches it and words that way out its own way."""


def shown(value):
    """``value`` as a message shows it: its repr, a numpy scalar's as that of the Python number it holds (2.5,
    not np.float64(2.5))."""
    import numpy as np

    return repr(value.item() if isinstance(value, np.generic) else value)
