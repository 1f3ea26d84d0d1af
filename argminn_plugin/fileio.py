"""Atomic writes and safe model files.

Everything the plugin writes (checkpoints, predictions, motif files, BED,
reports) goes through :func:`atomic_write`: the content is written to a
temporary file in the destination directory, flushed to disk, and renamed over
the destination, so an interrupted run never leaves a half-written file. An
existing output is not replaced unless ``force`` is true (and keeps its
permissions when it is); a single output given as a symbolic link is
written through; a pipe or device is refused as an output.

Model files hold only tensors and plain Python values (config dicts, numbers,
strings) and are read with ``torch.load(weights_only=True)``, so loading a
model file never executes code from it.
"""

import contextlib
import io
import json
import math
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
import threading
import time

import torch

from .errors import ArgminnError

try:
    import fcntl
except ImportError:  # not POSIX (Windows): scratch files are not locked, and none is taken as abandoned
    fcntl = None


_UMASK = os.umask(0)
os.umask(_UMASK)


def read_json_object(path, what):
    """The JSON object in ``path``; a file that cannot be read, is not JSON or holds no object is an
    ArgminnError naming it as ``what`` (e.g. "simulation.json", "motif report")."""
    try:
        with open(path, encoding="utf-8-sig") as handle:  # a byte-order mark (an editor's) is not part of the text
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ArgminnError(f"{path}: not a readable {what} (line {exc.lineno}: not valid JSON: {exc.msg})") from None
    except UnicodeDecodeError:
        raise ArgminnError(f"{path}: not a readable {what} (not a text file)") from None
    except (OSError, ValueError) as exc:
        raise ArgminnError(f"{path}: not a readable {what} ({exc})") from None
    if not isinstance(data, dict):
        raise ArgminnError(f"{path}: not a readable {what} (a JSON object is expected, got {type(data).__name__})")
    return data


def read_tsv(path, what, columns=(), hint="", dtype=None):
    """The tab-separated table in ``path`` (one this package wrote: ``what``, e.g. "motif table"); a file
    that cannot be read or parsed, or lacks one of ``columns``, is an ArgminnError naming it (``hint``: what
    writes it again; ``dtype``: pandas' read_csv dtype, e.g. {"chrom": str} to keep a name such as 01)."""
    import pandas as pd

    advice = f"; {hint}" if hint else ""
    try:
        table = pd.read_csv(path, sep="\t", dtype=dtype)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # pandas' EmptyDataError, ParserError: ValueErrors
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
        raise ArgminnError(f"{path}: not a readable {what} ({type(exc).__name__}: {detail}){advice}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ArgminnError(f"{path}: not a readable {what} (no column {', '.join(map(repr, missing))}){advice}")
    return table


def usual_mode(path):
    """Give a file made by ``tempfile.mkstemp`` (mode 0600) the mode a new file gets under this process's umask."""
    os.chmod(path, 0o666 & ~_UMASK)


def is_special(path):
    """Whether ``path`` is (or links to) something other than a file or directory, such as a pipe (FIFO) or a
    device, or is a link in /dev or /proc (``/dev/stdout``, ``/proc/self/fd/1``: whatever the shell opened,
    a file too, which a rename would take from under it)."""
    if os.path.islink(path) and os.path.abspath(path).startswith(("/dev/", "/proc/")):
        return True
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def keep_mode(source, target):
    """Give ``source`` the permissions of ``target``, the file it is about to replace (if there is one that can
    be read: none, or a loop of links, leaves ``source`` as it is)."""
    with contextlib.suppress(OSError):
        os.chmod(source, stat.S_IMODE(os.stat(target).st_mode))


def check_writable(path, force=False):
    """Refuse to overwrite an existing ``path`` unless ``force``, and a pipe or device (:func:`is_special`)
    always: an output is written beside its file and renamed into place."""
    if not path:
        raise ArgminnError("an output path is empty; give a file name")
    if os.path.isdir(path):
        raise ArgminnError(f"{path}: is a directory; give a file name for this output")
    path = os.fspath(path)  # (a pathlib.Path too)
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):  # a directory's name, made or not
        raise ArgminnError(f"{path}: ends in {path[-1]!r}, as a directory's name does; give a file name for this "
                           "output")
    name_bytes, most = len(os.fsencode(os.path.basename(path))), _name_max(os.path.dirname(os.path.abspath(path)))
    if most is not None and name_bytes > most:  # found before the work whose output it is, not when it is placed
        raise ArgminnError(f"{path}: a file name of {name_bytes} bytes; this file system takes at most {most}")
    if is_special(path):
        raise ArgminnError(f"{path}: is a pipe or device, not a file; give a file name for this output (it is "
                           "written beside the file and renamed into place)")
    if os.path.exists(path) and not force:
        raise ArgminnError(f"{path}: output exists; pass --force (force=True in Python) to overwrite it")


def _name_max(directory):
    """The longest file name (bytes) the file system of ``directory`` (or of its nearest existing parent) takes;
    None where it does not say (no limit, or no pathconf: Windows counts its own way), and nothing is refused."""
    while directory and not os.path.isdir(directory):
        parent = os.path.dirname(directory)
        directory = parent if parent != directory else ""
    try:
        most = os.pathconf(directory or os.curdir, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return None
    return most if most > 0 else None


# Of an output's name, a scratch file beside it keeps at most this many bytes (a name may be 255 bytes long,
# and the scratch file's adds its random part and suffix).
SCRATCH_NAME_BYTES = 200


def scratch_prefix(path):
    """``.<the name of path>.``, the name cut to at most ``SCRATCH_NAME_BYTES`` (whole characters): the start of
    a hidden scratch file's name beside ``path``."""
    name = os.path.basename(path)
    while len(os.fsencode(name)) > SCRATCH_NAME_BYTES:
        name = name[:-1]
    return "." + name + "."


def json_ready(obj):
    """``obj`` with every NaN or infinite float made None (JSON null): an auROC of a split with one class is
    undefined, and strict JSON readers (jq, JavaScript) refuse Python's bare NaN."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


def dump_json(obj, handle, **kwargs):
    """``json.dump`` of ``json_ready(obj)``, strict: a non-finite number never reaches the file."""
    json.dump(json_ready(obj), handle, allow_nan=False, **kwargs)


# A hidden scratch file (or directory) beside an output is held with an exclusive flock by the process writing
# it, from just after making it until it is renamed or removed; one that no process holds and that is older than
# this many seconds (past the moment between making it and locking it) was left by a process killed on the way
# (SIGKILL, a power cut), and the next write beside it removes it.
ABANDONED_AFTER = 60
MKSTEMP_PART = "[a-z0-9_]{8}"  # tempfile's random part of a name


def hold(fd):
    """Mark the scratch file (or directory) open as ``fd`` as in use, until every copy of ``fd`` is closed (or
    the process ends, however it ends). Not blocking: a file just made is no one else's to hold, and a file
    system whose lock service hangs (some network mounts) does not hold the write up."""
    if fcntl is not None:
        # a file system without flock (some network mounts): then no probe can lock it either, and it is kept
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


_HELD = threading.local()  # per thread: the directories it holds, (device, inode) -> descriptor


def _held_here():
    if not hasattr(_HELD, "directories"):
        _HELD.directories = {}
    return _HELD.directories


def hold_directory(path, held_by):
    """Make the directory ``path`` if needed and hold it with an exclusive flock until :func:`release_directory`
    of the returned descriptor; a directory another process (or thread) holds is an ArgminnError saying it is
    ``held_by``. None (nothing to release) where the file system has no such lock, or where this thread holds it
    already (the outer hold covers the inner: a command holding its run over the training and its scores)."""
    os.makedirs(path, exist_ok=True)
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not openable as a directory here
        return None
    key = os.fstat(fd)
    key = (key.st_dev, key.st_ino)
    if key in _held_here():
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ArgminnError(f"{path}: {held_by}") from None
    except OSError:  # a file system without flock: not held
        os.close(fd)
        return None
    _held_here()[key] = fd
    return fd


def release_directory(fd):
    """Release a :func:`hold_directory` (None: nothing to release)."""
    if fd is None:
        return
    held = _held_here()
    for key in [key for key, value in held.items() if value == fd]:
        del held[key]
    os.close(fd)


def _abandoned(path, now):
    """Whether ``path`` is scratch no process holds (:func:`hold`), older than ``ABANDONED_AFTER`` seconds."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # (a FIFO of that name: no wait)
    except OSError:  # gone meanwhile, or not ours to read
        return False
    try:
        if now - os.fstat(fd).st_mtime < ABANDONED_AFTER:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its writer is alive
            return False
        return True
    finally:
        os.close(fd)


def _remove(path):
    """Remove a scratch file or directory, if it can be (best effort: what cannot be removed stays)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _scratch(directory, pattern):
    """The entries of ``directory`` whose names match ``pattern`` (a regular expression, whole name)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [(match, os.path.join(directory, name)) for name in names if (match := re.fullmatch(pattern, name))]


def remove_abandoned(directory, pattern):
    """Remove the scratch entries of ``directory`` named by ``pattern`` that were abandoned (:func:`_abandoned`)."""
    now = time.time()
    for _, path in _scratch(directory, pattern):
        if _abandoned(path, now):
            _remove(path)


def new_scratch(directory, prefix, suffix):
    """(fd, path) of a new hidden scratch file ``<prefix><random><suffix>`` in ``directory`` (tempfile.mkstemp),
    held (:func:`hold`) while ``fd`` is open; the abandoned ones of that name before it are removed first."""
    remove_abandoned(directory, re.escape(prefix) + MKSTEMP_PART + re.escape(suffix))
    fd, path = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    hold(fd)
    return fd, path


def _remove_abandoned_sets(directory):
    """Remove what killed :func:`output_set` blocks left in ``directory``: a set's staged files
    (``.<name>.<token>.partial``, and the scratch files of the writers writing them) are held through its lock
    file (``.<token>.partial``), which it holds from before the first of them is written until after the last is
    gone; files only (a set stages no directory), and only those of a lock found abandoned."""
    now = time.time()
    tokens = {}
    pattern = r"\.(?:.+\.)?([0-9a-f]{8})\.partial(?:\." + MKSTEMP_PART + r"(?:\.memelite)?\.tmp)?"
    for match, path in _scratch(directory, pattern):
        tokens.setdefault(match.group(1), []).append(path)
    for token, paths in tokens.items():
        lock = os.path.join(directory, f".{token}.partial")
        if lock in paths and _abandoned(lock, now):
            for path in sorted(paths, key=lambda path: path == lock):  # the lock last
                if os.path.isfile(path) and not os.path.islink(path):
                    with contextlib.suppress(OSError):
                        os.unlink(path)


@contextlib.contextmanager
def atomic_write(path, mode="w", force=False):
    """Open a temporary file beside ``path``; rename it over ``path`` on success.

    ``mode`` is "w" (text) or "wb" (binary). On an exception the temporary file
    is removed and ``path`` is left as it was. A file replaced keeps its
    permissions; a symbolic link is written through (its target replaced, the
    link kept); a pipe or device is refused (:func:`check_writable`).
    Without ``force``, a file made at ``path`` by someone else meanwhile is
    not replaced either (an error, as if it had been there first).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    check_writable(path, force=force)
    fd, tmp, target = scratch_beside(path, ".tmp")
    directory = os.path.dirname(tmp)
    # held until the rename: a copy of the descriptor outlives the handle (POSIX; Windows renames no open file)
    kept = None
    try:
        kept = os.dup(fd) if fcntl is not None else None
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        usual_mode(tmp)
        keep_mode(tmp, target)
        _place(tmp, target, path, force)
    except BaseException:
        with contextlib.suppress(OSError):
            os.chmod(tmp, stat.S_IREAD | stat.S_IWRITE)  # (Windows removes no read-only file: keep_mode's)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        if kept is not None:
            os.close(kept)
    _sync_directory(directory)


def scratch_beside(path, suffix):
    """(fd, path, target) of a new hidden scratch file (:func:`new_scratch`, ending in ``suffix``) beside
    ``target``, the file a write to the output ``path`` lands on: ``path``, or the file it links to (its
    directory made if needed)."""
    target = os.path.realpath(path) if os.path.islink(path) else path
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = new_scratch(directory, scratch_prefix(target), suffix)
    return fd, tmp, target


def _place(tmp, target, path, force):
    """Rename ``tmp`` to ``target`` (the output ``path``, or the file it links to); without ``force``, never over
    a file: a hard link made where none may exist, then ``tmp`` removed (a file system without hard links: the
    rename, after one more look)."""
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise ArgminnError(f"{path}: output exists (made while this one was written); pass --force (force=True "
                           "in Python) to overwrite it") from None
    except OSError:  # no hard links here (some network or FUSE file systems)
        check_writable(path, force)
        os.replace(tmp, target)
    else:
        os.unlink(tmp)


def _sync_directory(directory):
    """Flush the directory entry of a rename to disk (POSIX), so a power cut after it keeps the new file."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not openable as a directory here (e.g. Windows): the rename stands as the OS keeps it
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not sync directories
    finally:
        os.close(fd)


@contextlib.contextmanager
def signals_deferred(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold a SIGINT (Ctrl-C) or SIGTERM (kill, timeout, a batch scheduler) that arrives inside the block until it
    ends, then deliver it as it would have been.

    Only in the main thread (the only one where Python takes signals); elsewhere the block runs as it is. A signal
    whose handler was set outside Python is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in signums}
    previous = {signum: handler for signum, handler in previous.items() if handler is not None}
    held = []
    for signum in previous:
        signal.signal(signum, lambda got, frame: held.append((got, frame)))
    try:
        yield
    finally:
        # blocked while the handlers are put back: a signal between two restores would otherwise raise here and
        # leave the other signal's holding handler installed; one that arrives meanwhile is delivered on unblocking
        blocking = hasattr(signal, "pthread_sigmask")
        if blocking:
            signal.pthread_sigmask(signal.SIG_BLOCK, list(previous))
        try:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        finally:
            if blocking:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, list(previous))
    for signum, frame in held:  # delivered as they would have been; the first that acts ends the block
        handler = previous[signum]
        if callable(handler):  # Python's default SIGINT handler raises KeyboardInterrupt here
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), signum)


def replace_together(moves):
    """Rename each ``(source, target)`` of ``moves``, in order, as one step: a Ctrl-C or SIGTERM during the renames
    takes effect after them (one between two would leave a mixed set); then the renames are flushed to disk."""
    for source, target in moves:
        keep_mode(source, target)
    with signals_deferred():
        for source, target in moves:
            os.replace(source, target)
    for directory in dict.fromkeys(os.path.dirname(os.path.abspath(target)) for _, target in moves):
        _sync_directory(directory)


@contextlib.contextmanager
def output_set(directory, names, force=False):
    """Write a command's several output files (``names`` in ``directory``) as one set.

    Each is refused over an existing file unless ``force``. Yields
    ``stage``: name -> a hidden temporary path beside its output, for the
    writers in the block to write to. When the block ends, the staged files
    are renamed over their outputs together (an output the block did not
    write is left alone; a Ctrl-C or SIGTERM during the renames takes effect
    after them); on an exception or an interrupt before that every staged file is
    removed, so the earlier outputs (or none) are left, never part of a new
    set beside the rest of an old one.
    """
    paths = {name: os.path.join(directory, name) for name in names}
    for path in paths.values():
        check_writable(path, force)
    os.makedirs(directory, exist_ok=True)
    _remove_abandoned_sets(directory)
    while True:  # the set's lock file, held while any staged file can exist
        token = secrets.token_hex(4)
        lock = os.path.join(directory, f".{token}.partial")
        try:
            lock_fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        break
    stage = {name: os.path.join(directory, f".{name}.{token}.partial") for name in paths}
    try:
        hold(lock_fd)
        yield stage
        replace_together([(stage[name], path) for name, path in paths.items() if os.path.exists(stage[name])])
    finally:
        for staged in stage.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
        os.close(lock_fd)  # (Windows removes no open file) the staged files are gone: the lock has done its work
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


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
        if os.path.isdir(path):
            raise ArgminnError(f"{path}: is a directory; give the model file in it (a training run's model.pt)")
        raise ArgminnError(f"{path}: model file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, tampered or not a torch file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if first.startswith("Weights only load failed"):
            # torch's own text goes on to suggest weights_only=False, which would run whatever code the file holds
            first = ("it is not a torch file of tensors and plain data, the only kind loaded here; a model saved "
                     "whole (torch.save(model)) is not loaded, as unpickling it would run code: write the model "
                     "with argminn_plugin.train.save_model(model, path), which load_model reads")
        elif isinstance(exc, KeyError) or first.isdigit():  # the unpickler's bare key: a text file read as a pickle
            first = f"not a torch file ({type(exc).__name__} {first} while reading it)"
        raise ArgminnError(
            f"{path}: not a valid ARGMINN model file (truncated, tampered or not made by argminn): {first}"
        ) from None


def _tensor_digest(digest, named):
    """``digest`` (a hashlib object) fed each (name, tensor)'s name, shape, dtype and bytes; its hex digest."""
    for name, value in named:
        value = value.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(value.shape)}{value.dtype}".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def model_fingerprint(model):
    """A SHA-256 of a model's parameters and buffers (names, shapes, values as float32), to tell which model a
    derived output (a motif directory) came from. The same model in float64 or a copy of its file gives the same
    one; BatchNorm's step counter, which no output depends on, is left out."""
    import hashlib

    return _tensor_digest(hashlib.sha256(), (
        (name, value.to(torch.float32) if value.is_floating_point() else value)
        for name, value in sorted(model.state_dict().items()) if not name.endswith("num_batches_tracked")))


def data_fingerprint(X_train, y_train, X_valid, y_valid):
    """A hash of training and validation data (shapes, dtypes, bytes), kept in a run's ``last.pt``: a resumed
    run must see the same data."""
    import hashlib

    return _tensor_digest(hashlib.blake2b(digest_size=16), zip(("X_train", "y_train", "X_valid", "y_valid"),
                                                               (X_train, y_train, X_valid, y_valid)))


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
