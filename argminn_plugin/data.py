"""Sequence data: one-hot encoding, FASTA + BED loading, input validation.

Loading reuses the ecosystem: pyfaidx reads FASTA files and
``tangermeme.io.extract_loci`` cuts fixed-length windows centred on BED
intervals; ``tangermeme.utils.one_hot_encode`` encodes strings. This module adds
the checks that turn messy input into one-line errors naming the file, line or
field.

Conventions: alphabet A, C, G, T (rows 0-3 of a (4, L) array); lowercase is
accepted (soft-masked genomes); N becomes an all-zero column; any other letter
(IUPAC codes such as R or Y) is rejected with its sequence name and position.
"""

import contextlib
import functools
import os
import re
import struct
import zlib

import numpy as np
import pandas as pd
import torch

from .config import RESERVED_COLUMNS, task_name_problems
from .errors import ArgminnError

ALPHABET = ("A", "C", "G", "T")
_LOOKUP = np.full(256, -2, dtype=np.int8)
for _i, _b in enumerate(ALPHABET):
    _LOOKUP[ord(_b)] = _i
    _LOOKUP[ord(_b.lower())] = _i
_LOOKUP[ord("N")] = _LOOKUP[ord("n")] = -1


def one_hot(sequence, name="sequence"):
    """Encode one DNA string as a (4, L) float32 tensor (N -> zero column)."""
    from tangermeme.utils import one_hot_encode

    codes = _LOOKUP[np.frombuffer(sequence.encode("latin-1", "replace"), dtype=np.uint8)]
    bad = np.flatnonzero(codes == -2)
    if bad.size:
        pos = int(bad[0])
        raise ArgminnError(
            f"{name}: position {pos + 1}: character {sequence[pos]!r} is not A, C, G, T or N "
            f"({bad.size} such character(s); IUPAC ambiguity codes are not accepted)"
        )
    return one_hot_encode(sequence.upper(), alphabet=list(ALPHABET), ignore=["N"]).float()


def one_hot_many(sequences, names=None, length=None):
    """Encode equal-length strings as an (N, 4, L) float32 tensor."""
    if len(sequences) == 0:
        raise ArgminnError("no sequences given (empty input)")
    names = names or [f"sequence {i + 1}" for i in range(len(sequences))]
    length = length or len(sequences[0])
    for seq, name in zip(sequences, names):
        if len(seq) != length:
            raise ArgminnError(f"{name}: length {len(seq)} but the model expects {length} bp")
    return torch.stack([one_hot(s, n) for s, n in zip(sequences, names)])


def decode(X):
    """(4, L) or (N, 4, L) one-hot -> string(s); all-zero columns become N."""
    arr = np.asarray(X.detach().cpu() if torch.is_tensor(X) else X)
    single = arr.ndim == 2
    arr = arr[None] if single else arr
    letters = np.array(list("ACGTN"))
    idx = np.where(arr.sum(1) > 0, arr.argmax(1), 4)
    out = ["".join(letters[row]) for row in idx]
    return out[0] if single else out


def reverse_complement(X):
    """Reverse complement of (N, 4, L) one-hot (ACGT order)."""
    return X.flip([-2, -1])


def shift_sequences(X, shifts, fill):
    """Each row ``i`` of one-hot ``X`` (N, 4, L) moved ``shifts[i]`` bases to the right (left if negative), what
    moves past an end lost; the positions left empty take the bases of ``fill`` there ((N, L) codes 0-3, ACGT)."""
    length = X.shape[-1]
    source = torch.arange(length)[None, :] - torch.as_tensor(shifts).reshape(-1, 1)
    inside = (source >= 0) & (source < length)
    moved = torch.gather(X, 2, source.clamp(0, length - 1)[:, None, :].expand(-1, X.shape[1], -1))
    filled = torch.nn.functional.one_hot(torch.as_tensor(fill, dtype=torch.long), X.shape[1]).transpose(1, 2)
    return torch.where(inside[:, None, :], moved, filled.to(X.dtype))


def check_X(X, length=None, name="X"):
    """Validate and convert an (N, 4, L) one-hot array to a float32 tensor."""
    if isinstance(X, np.ndarray):
        if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise ArgminnError(f"{name}: dtype {X.dtype} is not numeric; expected one-hot floats of shape (N, 4, L)")
        X = torch.from_numpy(np.ascontiguousarray(X))
    if not torch.is_tensor(X):
        raise ArgminnError(f"{name}: expected a numpy array or torch tensor of shape (N, 4, L), got {type(X).__name__}")
    if X.ndim != 3 or X.shape[1] != 4:
        raise ArgminnError(f"{name}: shape {tuple(X.shape)}; expected (N, 4, L) one-hot with A, C, G, T rows")
    if X.shape[0] == 0:
        raise ArgminnError(f"{name}: empty input (0 sequences)")
    if length is not None and X.shape[2] != length:
        raise ArgminnError(f"{name}: sequences are {X.shape[2]} bp but the model expects {length} bp")
    if X.is_complex() or not (X.is_floating_point() or X.dtype in (torch.bool, torch.uint8, torch.int8,
                                                                    torch.int16, torch.int32, torch.int64)):
        raise ArgminnError(f"{name}: dtype {X.dtype} is not supported; expected float one-hot")
    X = X.float()
    if not torch.isfinite(X).all():
        raise ArgminnError(f"{name}: contains NaN or infinite values")
    return X


def model_input(model, X, name="X", any_length=False):
    """:func:`check_X` for ``model``: its input length (any length with ``any_length``, for a part of the model
    that takes any, such as the scanner), in its dtype (a model in float64, as for DeepLIFT, gets float64
    input)."""
    length = None if any_length else model.config.input_length
    return check_X(X, length, name).to(next(model.parameters()).dtype)


@contextlib.contextmanager
def evaluating(model):
    """``model`` in eval mode inside the block; afterwards (also on error) every module is back in the mode it was
    in, as tangermeme's functions leave a model: a caller's model in training mode stays in training mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def in_eval_mode(function):
    """``function(model, ...)`` run with ``model`` (its first argument) :func:`evaluating`."""
    @functools.wraps(function)
    def run(model, *args, **kwargs):
        with evaluating(model):
            return function(model, *args, **kwargs)
    return run


def check_device(device, cpu_hint="device='cpu'"):
    """``device`` (a torch device or its name: 'cpu', 'cuda', 'cuda:1', 'mps') checked to be one this machine has;
    returns its name ('cpu', 'cuda:N' or 'cuda', 'mps'). An ArgminnError otherwise, offering ``cpu_hint``."""
    if isinstance(device, int) and not isinstance(device, bool):  # torch: an index of the accelerator (CUDA)
        device = f"cuda:{device}"
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ArgminnError(f"not a torch device: {device!r} (e.g. cpu, cuda, cuda:1, mps)") from None
    text = str(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ArgminnError(f"{text!r}: CUDA is not available here (torch {torch.__version__}); use {cpu_hint}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ArgminnError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered "
                               "from 0")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ArgminnError(f"{text!r}: MPS is not available here; use {cpu_hint}")
    elif device.type != "cpu":
        raise ArgminnError(f"{text!r}: only cpu, cuda and mps are supported")
    return text if device.type == "cuda" else device.type  # cpu:N and mps:N name the one CPU / MPS device


def check_labels(y, n=None, name="labels"):
    """Validate binary labels; returns a float32 (N, T) tensor."""
    try:
        # a copy: a read-only array (a pandas column's values) would make torch warn that it is not writable
        y = torch.as_tensor(np.array(y.detach().cpu() if torch.is_tensor(y) else y), dtype=torch.float32)
    except (TypeError, ValueError):  # strings, None, ragged lists
        kind = getattr(y, "dtype", None)
        what = f"{type(y).__name__} of {kind}" if kind is not None else type(y).__name__
        raise ArgminnError(f"{name}: expected numeric 0/1 labels of shape (N,) or (N, T), got {what} (text, "
                           "missing values or rows of unequal length?)") from None
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ArgminnError(f"{name}: shape {tuple(y.shape)}; expected (N,) or (N, T)")
    if n is not None and y.shape[0] != n:
        raise ArgminnError(f"{name}: {y.shape[0]} rows but there are {n} sequences")
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        row, col = (int(v) for v in bad.nonzero()[0])
        raise ArgminnError(f"{name}: row {row + 1}, column {col + 1}: value {float(y[row, col])!r} is not 0 or 1")
    return y


# ----------------------------------------------------------------- FASTA / BED

def open_fasta(path):
    """Open a FASTA with pyfaidx, rebuilding a missing or stale .fai index."""
    import pyfaidx

    if not os.path.isfile(path):
        what = "is a directory; give the FASTA file in it" if os.path.isdir(path) else "FASTA file not found"
        raise ArgminnError(f"{path}: {what}")
    fai = path + ".fai"
    if os.path.exists(fai):
        stale = ("is older than" if os.path.getmtime(fai) < os.path.getmtime(path)  # the FASTA changed after it
                 else None if _index_fits(path, fai) else "does not describe")  # one that came with an old time
        if stale:
            try:
                os.remove(fai)
            except OSError as exc:
                raise ArgminnError(f"{fai}: index {stale} {path} and cannot be rebuilt ({exc.strerror})") from None
    try:
        return pyfaidx.Fasta(path, as_raw=True, sequence_always_upper=False, rebuild=True)
    # struct.error, RuntimeError: Bio.bgzf on a cut or damaged bgzipped file
    except (pyfaidx.FastaIndexingError, pyfaidx.FastaNotFoundError, ValueError, OSError, struct.error, RuntimeError,
            EOFError, zlib.error) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise ArgminnError(f"{path}: cannot read as FASTA ({msg})") from None


def _index_fits(path, fai):
    """Whether the .fai index ``fai`` may describe the FASTA ``path``: False only on evidence that it does not,
    read from its last record (a plain FASTA; a bgzipped one's index counts in uncompressed bytes and is not
    checked here): that record's last base lies past the file's end, or more than line breaks follows it, or the
    header line before its sequence names another record. A FASTA that arrives with an old time (gunzip, wget,
    cp -p, rsync -a, tar) beside an index of another file, or of the same sequence wrapped at another width, would
    otherwise be read through that index, at the wrong places."""
    window = 1 << 16
    try:
        with open(fai, "rb") as index:  # the last record is the index's last line (pyfaidx writes them in order)
            index.seek(max(0, os.fstat(index.fileno()).st_size - window))
            last = index.read().splitlines()[-1].split(b"\t")
        name, (length, offset, bases, width) = last[0], map(int, last[1:5])
        with open(path, "rb") as handle:
            if handle.read(2) == b"\x1f\x8b":
                return True
            size = os.fstat(handle.fileno()).st_size
            full, rest = divmod(length, bases) if bases > 0 else (0, 0)
            # just past the last base (no line break counted: a file may end without one)
            end = offset + (full * width + rest if rest else max(full - 1, 0) * width + bases * (full > 0))
            if end > size or size - end > window:
                return False
            handle.seek(end)
            if handle.read().strip():  # more than the line breaks after the last line
                return False
            start = max(0, offset - len(name) - window)
            handle.seek(start)
            before = handle.read(offset - start)
    except (OSError, ValueError, IndexError):
        return False
    if before.endswith(b"\n"):
        header = before[:-1].rsplit(b"\n", 1)
    elif length == 0 and offset == size:  # an empty last record whose header line has no line break
        header = before.rsplit(b"\n", 1)
    else:
        return False
    if len(header) == 1 and start > 0:  # a header longer than the window: not seen whole, so not judged
        return True
    return header[-1].rstrip(b"\r").split()[:1] == [b">" + name]


def unreadable(path, exc, kind):
    """The one-line error for a text input that cannot be read (an exception of :data:`UNREADABLE`): not
    text, or a broken or cut-off gzip."""
    what = f"not a text {kind}" if isinstance(exc, UnicodeDecodeError) else f"cannot read ({exc})"
    return ArgminnError(f"{path}: {what}")


UNREADABLE = (UnicodeDecodeError, EOFError, OSError, zlib.error)  # reading through open_text


def open_text(path):
    """A text handle on ``path``, read through gzip when the file is gzipped, whatever its name (ENCODE ships
    .bed.gz; a .vcf.gz is BGZF, which gzip reads)."""
    import gzip

    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not read as part of the first field
    return gzip.open(path, "rt", encoding="utf-8-sig") if gzipped else open(path, encoding="utf-8-sig")


MAX_COORDINATE = 2 ** 62  # far past any chromosome; kept below int64's limit


def whole_number(text):
    """``int(text)`` for plain decimal digits, optionally after a minus (and spaces around them, as int() takes);
    not int()'s other forms ('3_00', '+30')."""
    if not re.fullmatch(r"\s*-?[0-9]+\s*", text):
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


def _looks_like_header(line):
    """A BED comment line that names the columns: its second name is start (or chromStart), split by tabs or, in
    error, by spaces (read_bed then refuses it); other '#' lines are comments."""
    for names in (line.lstrip("#").split("\t"), line.lstrip("#").split()):
        if len(names) >= 3 and names[1].strip().lower() in ("start", "chromstart", "chrom_start"):
            return True
    return False


def read_bed(path, label_columns=False, summits=False):
    """Read a BED file (chrom, start, end[, ...]), plain or gzipped, with line-numbered checks.

    With ``label_columns=True`` the columns after the first three are 0/1
    labels, one per task; a header line starting with '#' names them (as
    written by ``argminn simulate``). With ``summits=True`` the file is a
    narrowPeak (BED6+4) whose tenth column is the summit's offset from the
    start: each interval is moved, keeping its width, so that its centre is
    the summit (tangermeme's and bpnet-lite's ``summits=True`` rule; the
    narrowPeak value -1, no summit called, keeps the interval's centre); the
    file's own coordinates stay in ``peak_start`` / ``peak_end``, the summit
    used in ``summit``. Otherwise a fourth column on every line is the
    intervals' ``name`` (BED's), unless a header names it otherwise.
    Returns (DataFrame, task_names).
    """
    if label_columns and summits:
        raise ArgminnError(f"{path}: a narrowPeak file (summits) has no label columns")
    if not os.path.isfile(path):
        raise ArgminnError(f"{path}: BED file not found")
    rows, lines, header, header_line = [], [], None, None
    try:
        with open_text(path) as handle:
            for lineno, line in enumerate(handle, 1):
                text = line.rstrip("\n\r")
                if not text.strip() or text.startswith(("track", "browser")):
                    continue
                if text.startswith("#"):
                    if header is None and not rows and _looks_like_header(text):
                        header, header_line = text.lstrip("#").split("\t"), lineno
                        while len(header) > 1 and not header[-1].strip():  # a trailing tab names nothing
                            header.pop()
                    continue
                fields = text.split("\t")
                if len(fields) < 3:
                    raise ArgminnError(f"{path}: line {lineno}: {len(fields)} column(s); BED needs chrom, start, end "
                                       "separated by tabs")
                try:
                    start, end = whole_number(fields[1]), whole_number(fields[2])
                except ValueError:
                    hint = "; a header line? start it with '#'" if not rows else ""
                    raise ArgminnError(f"{path}: line {lineno}: start/end must be integers, got "
                                       f"{fields[1]!r}, {fields[2]!r}{hint}") from None
                if start < 0:
                    raise ArgminnError(f"{path}: line {lineno}: start {start} is negative")
                if start >= end:
                    raise ArgminnError(f"{path}: line {lineno}: start {start} is not before end {end}")
                if end > MAX_COORDINATE:
                    raise ArgminnError(f"{path}: line {lineno}: end {end} is beyond any chromosome")
                rows.append(fields)
                lines.append(lineno)
    except UNREADABLE as exc:
        raise unreadable(path, exc, "BED file") from None
    if not rows:
        raise ArgminnError(f"{path}: no intervals (empty BED)")
    if label_columns:  # every row must carry every task's label
        ragged = next(((r, n) for r, n in zip(rows, lines) if len(r) != len(rows[0])), None)
        if ragged:
            raise ArgminnError(f"{path}: line {ragged[1]}: {len(ragged[0])} columns, but line {lines[0]} has "
                               f"{len(rows[0])}; a labelled BED needs the same label columns on every line")
    if summits:
        short = next(((r, n) for r, n in zip(rows, lines) if len(r) < 10), None)
        if short:
            raise ArgminnError(f"{path}: line {short[1]}: {len(short[0])} column(s); summits are read from a "
                               "narrowPeak file's tenth column")
    width = min(len(r) for r in rows)
    df = pd.DataFrame([r[:width] for r in rows])
    df.columns = ["chrom", "start", "end"] + [f"col{i}" for i in range(4, width + 1)]
    df["chrom"] = df["chrom"].astype(str)
    df["start"] = df["start"].astype(np.int64)
    df["end"] = df["end"].astype(np.int64)
    df["line"] = lines
    names = []
    if label_columns:
        if width < 4:
            raise ArgminnError(f"{path}: no label column; a labelled BED has chrom, start, end, then one 0/1 "
                               "column per task")
        label_cols = list(df.columns[3:width])
        if header and len(header) > 3 and len(header) != width:
            raise ArgminnError(f"{path}: line {header_line} (the header): {len(header)} tab-separated names, but "
                               f"the lines have {width} columns; name chrom, start, end and each label column once")
        if header and len(header) <= 3 and len(header[0].split()) == width:
            raise ArgminnError(f"{path}: line {header_line} (the header): separate its names by tabs, as the "
                               "columns are")
        names = header[3:width] if header and len(header) == width else [f"task{i}" for i in range(width - 3)]
        taken, repeated, logits = task_name_problems(names)
        if taken or repeated or logits:
            what = (f"{', '.join(map(repr, repeated))} named twice" if repeated else
                    f"{', '.join(map(repr, taken))} is not a task name ({', '.join(RESERVED_COLUMNS)} are the "
                    "intervals' own columns, here or in predict's output; a name cannot be blank)" if taken else
                    f"{logits[0]!r} is also the name of predict's logit column of task {logits[0][:-6]!r}")
            raise ArgminnError(f"{path}: line {header_line} (the header): task column {what}; give each label "
                               "column its own name")
        for col in label_cols:
            for value, lineno in zip(df[col], df["line"]):
                if value not in ("0", "1"):
                    raise ArgminnError(f"{path}: line {lineno}: label {value!r} is not 0 or 1")
        df = df.rename(columns=dict(zip(label_cols, names)))
        df[names] = df[names].astype(np.float32)
    named = bool(label_columns and header and len(header) == width)
    if not label_columns and not summits and width >= 4 and (
            header is None or len(header) <= 3 or header[3].strip().lower() == "name"):
        df = df.rename(columns={"col4": "name"})  # BED's fourth column: the interval's name (predict writes it)
    if summits:
        df = _centre_on_summits(df, path)
    df.attrs["named_tasks"] = named  # the task names are the header's (else task0, task1, ...)
    return df, list(names)


def _centre_on_summits(df, path):
    """Move each narrowPeak interval, same width, so that its centre is the summit (see ``read_bed``)."""
    start, end = df["start"].to_numpy(), df["end"].to_numpy()
    summit = np.empty(len(df), dtype=np.int64)
    for i, (value, lineno) in enumerate(zip(df["col10"], df["line"])):
        try:
            number = whole_number(value)
        except ValueError:
            raise ArgminnError(f"{path}: line {lineno}: summit (column 10) {value!r} is not an integer") from None
        if number == -1:  # narrowPeak: no summit called
            summit[i] = (end[i] - start[i]) // 2
        elif not 0 <= number < end[i] - start[i]:  # (checked before it goes into the int64 array)
            raise ArgminnError(f"{path}: line {lineno}: summit {number} (column 10) is not inside the "
                               f"{end[i] - start[i]}-bp peak (it counts from the start: 0 to width - 1)")
        else:
            summit[i] = number
    width = end - start
    df = df.assign(peak_start=start, peak_end=end, summit=summit)
    df["start"] = start + summit - width // 2
    df["end"] = df["start"] + width
    return df


def centred_windows(bed, length):
    """Start/end of ``length``-bp windows centred on each interval (tangermeme's rule)."""
    mid = bed["start"].to_numpy() + (bed["end"].to_numpy() - bed["start"].to_numpy()) // 2
    start = mid - length // 2
    return start, start + length


def _outside(bed, fasta, length):
    """(window starts, ends, chromosome sizes, mask of rows whose centred window is not inside a chromosome of the
    FASTA): the one rule behind :func:`check_intervals` and :func:`skip_outside`."""
    start, end = centred_windows(bed, length)
    sizes = {c: len(fasta[c]) for c in set(bed["chrom"]) if c in fasta}
    outside = np.array([c not in sizes or s < 0 or e > sizes[c] for c, s, e in zip(bed["chrom"], start, end)],
                       dtype=bool)
    return start, end, sizes, outside


# How a caller of the loaders leaves out intervals whose window is not inside a chromosome, in the errors
SKIP_HINT = "--skip-outside (in Python, skip=True)"


def check_intervals(bed, fasta, length, path="BED", skip_option=SKIP_HINT):
    """Every centred window must lie on a known chromosome, inside its ends (the error names ``skip_option``, the
    caller's way to leave such lines out; None: the caller has none, and the error says to remove them)."""
    start, end, sizes, outside = _outside(bed, fasta, length)
    if not outside.any():
        return
    leave = f"{skip_option} leaves such lines out" if skip_option else "remove such lines"
    i = int(np.flatnonzero(outside)[0])
    chrom, s, e, lineno = bed["chrom"].iloc[i], start[i], end[i], bed["line"].iloc[i]
    if chrom not in sizes:
        known = ", ".join(list(fasta.keys())[:5])
        raise ArgminnError(f"{path}: line {lineno}: chromosome {chrom!r} is not in the FASTA "
                           f"(it has {known}{', ...' if len(fasta.keys()) > 5 else ''}; {leave})")
    raise ArgminnError(f"{path}: line {lineno}: the {length}-bp window {chrom}:{s + 1}-{e} of this line runs "
                       f"past the chromosome ({chrom} is {sizes[chrom]} bp; {leave})")


def skip_outside(bed, fasta, length, path="BED", what="interval"):
    """The rows of ``bed`` whose centred window lies on a chromosome of the FASTA, inside its ends (what
    tangermeme's and bpnet-lite's loaders keep); how many were left out is printed to stderr, naming the
    first one's line (``what``: what a row is, in the messages)."""
    import sys

    outside = _outside(bed, fasta, length)[3]
    if not outside.any():
        return bed
    if outside.all():
        raise ArgminnError(f"{path}: no {what}'s {length}-bp window lies inside a chromosome of the FASTA")
    print(f"{path}: left out {int(outside.sum())} of {len(bed)} {what}(s) whose {length}-bp window is not "
          f"inside a chromosome of the FASTA (the first: line {bed['line'].to_numpy()[outside][0]})",
          file=sys.stderr)
    return bed[~outside].reset_index(drop=True)


def load_intervals(fasta_path, bed_path, length, label_columns=False, summits=False, skip=False):
    """FASTA + BED -> (X (N, 4, length) float32, labels or None, bed, task names).

    Windows of ``length`` bp centred on each interval (on each summit of a
    narrowPeak file with ``summits=True``) are cut by
    ``tangermeme.io.extract_loci`` after every interval is checked; an
    interval whose window is not inside a chromosome of the FASTA is an error
    naming its line, or with ``skip`` is left out (:func:`skip_outside`).
    """
    bed, names = read_bed(bed_path, label_columns=label_columns, summits=summits)
    fasta = open_fasta(fasta_path)
    bed, = usable_intervals(fasta, fasta_path, [(bed, bed_path)], length, skip)
    X = _extract(fasta, [(bed, bed_path)], length)
    y = torch.tensor(bed[names].to_numpy(), dtype=torch.float32) if names else None
    return X, y, bed, names


def usable_intervals(fasta, fasta_path, beds, length, skip=False, skip_option=SKIP_HINT):
    """The beds of ``beds`` ((bed, path) pairs) with every ``length``-bp window checked against the FASTA: inside
    a chromosome (an error naming ``skip_option``, or with ``skip`` the rows outside left out, every file's
    before any is checked: :func:`skip_outside`) and of ACGTN letters (:func:`check_letters`)."""
    if skip:
        beds = [(skip_outside(bed, fasta, length, path), path) for bed, path in beds]
    for bed, path in beds:
        check_intervals(bed, fasta, length, path, skip_option)
        check_letters(fasta, bed, length, fasta_path, source=path)
    return [bed for bed, _ in beds]


def _extract(fasta, beds, length):
    """Cut the windows of every (bed, path) checked by :func:`usable_intervals`, in order, with extract_loci."""
    from tangermeme.io import extract_loci

    loci = pd.concat([bed[["chrom", "start", "end"]] for bed, _ in beds], ignore_index=True)
    X = extract_loci(loci=loci, sequences=fasta, in_window=length, verbose=False, ignore=["N"]).float()
    if X.shape[0] != len(loci):
        raise ArgminnError(f"{', '.join(p for _, p in beds)}: {len(loci)} intervals but {X.shape[0]} windows "
                           "were extracted")
    return X


def _file_stem(path):
    """The file's name without its BED-like extensions: ``K562.CTCF.narrowPeak.gz`` -> ``K562.CTCF``."""
    name = os.path.basename(path)
    for ext in (".gz", ".bgz", ".bed", ".narrowPeak", ".broadPeak", ".bed3", ".bed6", ".txt", ".tsv"):
        if name.lower().endswith(ext.lower()):
            name = name[:-len(ext)]
    return name


SPLITS = ("train", "valid", "test")


def _refuse_shared_windows(peaks, peaks_path, negatives, negatives_path, length):
    """A negative whose window is a peak's window would be one sequence labelled 1 and 0: refused, naming both
    lines (a mix-up of the files; bpnet negatives never gives one)."""
    windows = {}
    for chrom, start, line in zip(peaks["chrom"], centred_windows(peaks, length)[0], peaks["line"]):
        windows.setdefault((chrom, int(start)), int(line))
    for chrom, start, line in zip(negatives["chrom"], centred_windows(negatives, length)[0], negatives["line"]):
        if (chrom, int(start)) in windows:
            raise ArgminnError(f"{negatives_path}: line {line}: its {length}-bp window {chrom}:{start + 1}-"
                               f"{start + length} is also the window of {peaks_path} line "
                               f"{windows[chrom, int(start)]}, so one sequence would be labelled both 1 and 0; "
                               "remove it from one of the files")


def load_peaks(fasta_path, peaks_path, negatives_path, length, valid_chroms, test_chroms, summits=False,
               task_name=None, skip=False, needed=SPLITS):
    """Peaks + negatives (bpnet-lite's two BED files) + FASTA -> one-task labelled splits, as ``load_splits``.

    The peaks (plain BED, or narrowPeak centred on its summits with
    ``summits=True``) are the positives, label 1; the negatives (BED, e.g.
    the GC-matched regions of ``bpnet negatives``; always centred on their
    intervals, as bpnet-lite does) label 0. The task is named ``task_name``,
    by default after the peaks file (``K562.CTCF.narrowPeak.gz`` -> ``K562.CTCF``).
    ``skip``: as in :func:`load_intervals`, for both files; ``needed`` as in :func:`load_splits`.
    """
    peaks, _ = read_bed(peaks_path, summits=summits)
    negatives, _ = read_bed(negatives_path)
    columns = set(peaks.columns) | set(negatives.columns) | set(RESERVED_COLUMNS) | {"source"}
    if task_name is not None and (task_name in columns or not task_name.strip()):
        raise ArgminnError(f"task name {task_name!r} (--task-name) is taken by the intervals' own columns "
                           f"({', '.join(sorted(columns))}) or blank; give another")
    fasta = open_fasta(fasta_path)
    peaks, negatives = usable_intervals(fasta, fasta_path, [(peaks, peaks_path), (negatives, negatives_path)],
                                        length, skip)
    _refuse_shared_windows(peaks, peaks_path, negatives, negatives_path, length)
    X = _extract(fasta, [(peaks, peaks_path), (negatives, negatives_path)], length)
    name = task_name or _file_stem(peaks_path) or "peak"
    if name in columns:  # a file named start.bed
        name += "_peak"
    bed = pd.concat([peaks.assign(source=peaks_path), negatives.assign(source=negatives_path)],
                    ignore_index=True)
    for column in ("peak_start", "peak_end", "summit"):  # the peaks' alone: integers, missing for the negatives
        if column in bed.columns:
            bed[column] = bed[column].astype("Int64")
    bed[name] = np.r_[np.ones(len(peaks)), np.zeros(len(negatives))].astype(np.float32)
    y = torch.tensor(bed[[name]].to_numpy(), dtype=torch.float32)
    splits = _split_by_chrom(X, y, bed, valid_chroms, test_chroms, f"{peaks_path} + {negatives_path}", needed)
    for split in ("train", "valid") if {"train", "valid"} <= set(needed) else ():  # training: one class there,
        # nothing to learn or to stop on
        labels = splits[split][1][:, 0]
        for value, path, what in ((1, peaks_path, "peaks"), (0, negatives_path, "negatives")):
            if not (labels == value).any():
                chroms = sorted(set(splits[split][2]["chrom"]))
                raise ArgminnError(f"{path}: no {what} on the {split} split's chromosomes ({', '.join(chroms[:5])}"
                                   f"{', ...' if len(chroms) > 5 else ''}); both files need intervals on the "
                                   "training and the validation chromosomes (--valid-chroms, --test-chroms)")
    return splits, [name]


def check_letters(fasta, bed, length, path, source="BED"):
    """Reject windows holding letters other than ACGTN (any case); ``source`` names what the lines are of."""
    start, end = centred_windows(bed, length)
    for chrom, s, e, lineno in zip(bed["chrom"], start, end, bed["line"]):
        window = str(fasta[chrom][int(s):int(e)])
        codes = _LOOKUP[np.frombuffer(window.encode("latin-1", "replace"), dtype=np.uint8)]
        bad = np.flatnonzero(codes == -2)
        if bad.size:
            pos = int(bad[0])
            raise ArgminnError(f"{path}: {chrom}:{s + pos + 1}: character {window[pos]!r} is not A, C, G, T or N "
                               f"(window of {source} line {lineno}; IUPAC ambiguity codes are not accepted)")


def load_splits(fasta_path, bed_path, length, valid_chroms, test_chroms, skip=False, needed=SPLITS):
    """Labelled BED + FASTA -> {'train', 'valid', 'test'}: (X, y, bed); split by chromosome (``skip``: as in
    :func:`load_intervals`; ``needed``: the splits the caller reads, checked to have their intervals, as
    :func:`_split_by_chrom`)."""
    X, y, bed, names = load_intervals(fasta_path, bed_path, length, label_columns=True, skip=skip)
    return _split_by_chrom(X, y, bed, valid_chroms, test_chroms, bed_path, needed), names


def _split_by_chrom(X, y, bed, valid_chroms, test_chroms, where, needed=SPLITS):
    """{'train', 'valid', 'test'}: (X, y, bed) by chromosome; ``where`` names the data in errors. Of the splits
    in ``needed`` (training needs all three; design only the one it shuffles), each validation or test chromosome
    named must hold intervals, and the training and validation splits must not be empty."""
    valid_chroms, test_chroms = set(valid_chroms), set(test_chroms)
    if valid_chroms & test_chroms:
        raise ArgminnError(f"chromosome(s) {sorted(valid_chroms & test_chroms)} are both validation and test")
    chrom = bed["chrom"].to_numpy()
    present = set(chrom)
    for flag, split, names in (("validation", "valid", valid_chroms), ("test", "test", test_chroms)):
        if split not in needed and "train" not in needed:
            continue  # (the training split is what neither list names: both are checked for it)
        # a name that matches nothing would quietly leave that chromosome's intervals in training
        absent = sorted(names - present)
        if absent:
            shown = sorted(present)
            raise ArgminnError(f"{where}: no intervals on the {flag} chromosome(s) {', '.join(map(repr, absent))} "
                               f"(the data's: {', '.join(shown[:8])}{', ...' if len(shown) > 8 else ''}; give "
                               "several names separated by spaces)")
    masks = {"valid": np.isin(chrom, list(valid_chroms)), "test": np.isin(chrom, list(test_chroms))}
    masks["train"] = ~(masks["valid"] | masks["test"])
    out = {}
    for split, mask in masks.items():
        if split != "test" and split in needed and not mask.any():
            raise ArgminnError(f"{where}: no intervals in the {split} split (chromosomes: "
                               f"{sorted(valid_chroms) if split == 'valid' else 'all others'})")
        idx = torch.from_numpy(np.flatnonzero(mask))
        out[split] = (X[idx], y[idx], bed.iloc[idx.numpy()].reset_index(drop=True))
    return out


def rows_with_label(X, y, bed, label=1, task=0):
    """The (X, y, bed) rows of a split whose ``task`` label equals ``label`` (bed re-indexed from 0)."""
    rows = torch.nonzero(y[:, task] == label).flatten()
    return X[rows], y[rows], bed.iloc[rows.numpy()].reset_index(drop=True)
