"""Atomic writes and safe model files.

Everything the plugin writes (checkpoints, predictions, motif files, BED,
reports) goes through :func:`atomic_write`: the content is written to a
temporary file in the destination directory, flushed to disk, and renamed over
the destination, so an interrupted run never leaves a half-written file. An
existing output is not replaced unless ``force`` is true.

Model files hold only tensors and plain Python values (config dicts, numbers,
strings) and are read with ``torch.load(weights_only=True)``, so loading a
model file never executes code from it.
"""

import contextlib
import io
import os
import tempfile

import torch

from .errors import ArgminnError


_UMASK = os.umask(0)
os.umask(_UMASK)


def check_writable(path, force=False):
    """Refuse to overwrite an existing ``path`` unless ``force``."""
    if os.path.isdir(path):
        raise ArgminnError(f"{path}: is a directory; give a file name for this output")
    if os.path.exists(path) and not force:
        raise ArgminnError(f"{path}: output exists; pass --force (force=True) to overwrite it")


@contextlib.contextmanager
def atomic_write(path, mode="w", force=False):
    """Open a temporary file beside ``path``; rename it over ``path`` on success.

    ``mode`` is "w" (text) or "wb" (binary). On an exception the temporary file
    is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    check_writable(path, force=force)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give outputs the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_fasta(path, names, sequences, force=False, width=80):
    """Write sequences as FASTA (atomically; refused over an existing file unless ``force``), ``width`` letters a
    line."""
    with atomic_write(path, force=force) as handle:
        for name, sequence in zip(names, sequences, strict=True):
            handle.write(f">{name}\n")
            for i in range(0, len(sequence), width):
                handle.write(sequence[i:i + width] + "\n")


def atomic_save_torch(obj, path, force=False):
    """``torch.save`` through :func:`atomic_write`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_write(path, "wb", force=force) as handle:
        handle.write(buffer.getvalue())


def safe_load_torch(path):
    """Load a model file with ``weights_only=True``; clear error if it is bad."""
    if not os.path.isfile(path):
        raise ArgminnError(f"{path}: model file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, tampered or not a torch file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArgminnError(
            f"{path}: not a valid ARGMINN model file (truncated, tampered or not made by argminn): {first}"
        ) from None


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path, force=False, dpi=100):
    """Write a matplotlib figure as PNG through :func:`atomic_write`, then close it."""
    try:
        with atomic_write(path, "wb", force=force) as handle:
            fig.savefig(handle, format="png", dpi=dpi)
    finally:
        pyplot().close(fig)
