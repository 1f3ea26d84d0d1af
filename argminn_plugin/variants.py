"""Single-nucleotide variants: reading (VCF or table), reference checks, effects.

Variants are read from a VCF (``#CHROM POS ID REF ALT`` ..., 1-based) or a
tab-separated table with a header naming ``chrom, pos, ref, alt`` (1-based
``pos``). Each record's REF must match the genome; a mismatch is a one-line
error naming the file and line. Effects are scored with tangermeme's
``substitution_effect`` on a window of the model's input length centred on the
variant (the variant sits at window index ``L // 2``).
"""

import numbers
import os

import pandas as pd
import torch

from .data import (ALPHABET, MAX_COORDINATE, UNREADABLE, check_device, check_intervals, check_letters, in_eval_mode,
                   open_fasta, open_text, unreadable, whole_number)
from .errors import ArgminnError


def read_variants(path, skip_other=False):
    """VCF or chrom/pos/ref/alt table -> DataFrame (chrom, pos, ref, alt, id, line); SNVs only.

    A multi-allelic record (ALT ``C,G``) gives one SNV per allele (its ID, if
    any, suffixed ``_<alt>``). Any other record (an indel, a symbolic or
    missing allele) is an error naming its line, or with ``skip_other`` is
    left out; ``df.attrs["skipped"]`` counts the alleles left out.
    """
    if not os.path.isfile(path):
        raise ArgminnError(f"{path}: variant file not found")
    rows, header = [], None
    try:
        with open_text(path) as handle:
            for lineno, line in enumerate(handle, 1):
                text = line.rstrip("\n\r")
                if not text.strip() or text.startswith("##"):
                    continue
                fields = text.split("\t")
                if header is None:
                    names = [f.lstrip("#").lower() for f in fields]
                    if text.startswith("#") or {"chrom", "pos"} <= set(names):
                        header = names
                        continue
                    raise ArgminnError(f"{path}: line {lineno}: no header line; expected a VCF '#CHROM POS ID REF ALT' "
                                       "line or a table header with chrom, pos, ref, alt")
                rows.append((lineno, fields))
    except UNREADABLE as exc:  # gzipped or not, whatever the name (as a BED is read)
        raise unreadable(path, exc, "VCF or table") from None
    if header is None:  # (a record before any header is refused above)
        raise ArgminnError(f"{path}: no variants (the file is empty, or holds only '##' lines and blank ones)")
    if not {"chrom", "pos", "ref", "alt"} <= set(header):
        raise ArgminnError(f"{path}: the header must name chrom, pos, ref and alt columns")
    col = {name: header.index(name) for name in ("chrom", "pos", "ref", "alt")}
    id_col = header.index("id") if "id" in header else None
    records, skipped = [], 0
    for lineno, fields in rows:
        if len(fields) < len(header) and len(fields) <= max(col.values()):
            raise ArgminnError(f"{path}: line {lineno}: {len(fields)} field(s), expected {len(header)}")
        chrom, pos, ref, alt = (fields[col[k]] for k in ("chrom", "pos", "ref", "alt"))
        vid = fields[id_col] if id_col is not None and id_col < len(fields) else None  # a blank last field: none
        alts = alt.split(",")
        for allele in alts:
            if skip_other and not _is_snv(ref, allele):
                skipped += 1
                continue
            named = vid if len(alts) == 1 or vid is None or vid in ("", ".") else f"{vid}_{allele.upper()}"
            records.append((*_record(chrom, pos, ref, allele, named, f"{path}: line {lineno}"), lineno))
    if not records:
        raise ArgminnError(f"{path}: no variants (empty input)" if not skipped else
                           f"{path}: no SNVs ({skipped} other allele(s) skipped)")
    table = pd.DataFrame(records, columns=COLUMNS)
    table.attrs["skipped"] = skipped
    return table


COLUMNS = ["chrom", "pos", "ref", "alt", "id", "line"]


def _is_snv(ref, alt):
    """REF and ALT are one base each of A, C, G, T (any case)."""
    return len(ref) == len(alt) == 1 and ref.upper() in ALPHABET and alt.upper() in ALPHABET


def _record(chrom, pos, ref, alt, vid, where):
    """One SNV, checked: (chrom, 1-based pos, REF, ALT, id); ``where`` names it in an error."""
    if isinstance(pos, str):
        try:
            pos = whole_number(pos)
        except ValueError:
            raise ArgminnError(f"{where}: position {pos!r} is not an integer") from None
    elif isinstance(pos, numbers.Integral) and not isinstance(pos, bool):
        pos = int(pos)
    elif isinstance(pos, numbers.Real) and not isinstance(pos, bool) and float(pos).is_integer():
        pos = int(pos)  # a whole number in a float column (pandas makes one where any value is missing)
    elif pos is None or (pd.api.types.is_scalar(pos) and pd.isna(pos)):
        raise ArgminnError(f"{where}: no position")
    else:
        raise ArgminnError(f"{where}: position {pos!r} is not an integer")
    if pos < 1:
        raise ArgminnError(f"{where}: position {pos} is not 1-based (must be >= 1)")
    if pos > MAX_COORDINATE:
        raise ArgminnError(f"{where}: position {pos} is beyond any chromosome")
    ref, alt = str(ref).upper(), str(alt).upper()
    if "," in alt:  # only in a table: read_variants splits the alleles
        raise ArgminnError(f"{where}: ALT {alt} holds several alleles; a variant table has one SNV per row "
                           "(read_variants gives one per allele of a multi-allelic VCF record)")
    if not _is_snv(ref, alt):
        raise ArgminnError(f"{where}: {ref}>{alt} is not a single-nucleotide variant of A, C, G, T "
                           "(indels and symbolic alleles are not scored; --skip-other leaves them out)")
    if ref == alt:
        raise ArgminnError(f"{where}: ALT equals REF ({ref})")
    chrom = str(chrom)
    if vid is None or pd.isna(vid) or str(vid) in ("", "."):
        vid = f"{chrom}:{pos}{ref}>{alt}"
    return chrom, pos, ref, alt, str(vid)


def variant_table(variants, path="variants"):
    """The SNVs to score as a checked table (chrom, pos, ref, alt, id, line, then any other columns).

    Takes :func:`read_variants`' output, or any DataFrame with chrom, pos
    (1-based), ref and alt columns (id optional), checked row by row as
    :func:`read_variants` checks a file; errors then name the row (from 1).
    A ``line`` column is the table's own: the input file's line numbers
    (read_variants'), which errors name instead; one that holds anything
    but whole numbers >= 1 is refused (rename it). The chrom, pos, ref, alt
    and id columns may be named in any case (``tangermeme.io.read_vcf``
    gives CHROM, POS, ID, REF, ALT); the table names them in lower case.
    """
    if not isinstance(variants, pd.DataFrame):
        raise ArgminnError(f"{path}: expected a DataFrame of variants with chrom, pos (1-based), ref and alt "
                           f"columns, got {type(variants).__name__}")
    variants = _fields_named(variants, path)
    missing = [c for c in ("chrom", "pos", "ref", "alt") if c not in variants.columns]
    if missing:
        raise ArgminnError(f"{path}: no {', '.join(missing)} column(s); a variant table needs chrom, pos "
                           "(1-based), ref and alt")
    if len(variants) == 0:
        raise ArgminnError(f"{path}: no variants (empty input)")
    lines = variants["line"].tolist() if "line" in variants.columns else None
    for i, line in enumerate(lines or []):
        if isinstance(line, bool) or not isinstance(line, numbers.Integral) or line < 1:
            raise ArgminnError(f"{path}: row {i + 1}: column 'line' holds {line!r}; 'line' is the variants' own "
                               "column, their line numbers in the input file (as read_variants gives them): "
                               "rename that column")
    ids = variants["id"].tolist() if "id" in variants.columns else [None] * len(variants)
    records = []
    for i, (chrom, pos, ref, alt, vid) in enumerate(zip(variants["chrom"], variants["pos"], variants["ref"],
                                                         variants["alt"], ids)):
        where = f"{path}: line {lines[i]}" if lines is not None else f"{path}: row {i + 1}"
        records.append((*_record(chrom, pos, ref, alt, vid, where), lines[i] if lines is not None else i + 1))
    table = pd.DataFrame(records, columns=COLUMNS, index=variants.index)  # the caller's index kept
    for column in variants.columns:  # the caller's other columns, after ours
        if column not in COLUMNS:
            table[column] = variants[column].to_numpy()
    return table


FIELDS = ("chrom", "pos", "ref", "alt", "id")


def _fields_named(variants, path):
    """``variants`` with its chrom, pos, ref, alt and id columns, named in any case, renamed to lower case; two
    columns naming one field (``pos`` and ``POS``) are refused."""
    found = {}
    for column in variants.columns:
        if isinstance(column, str) and column.lower() in FIELDS:
            found.setdefault(column.lower(), []).append(column)
    for field, columns in found.items():
        if len(columns) > 1:
            raise ArgminnError(f"{path}: columns {', '.join(map(repr, columns))} both name the variants' {field}; "
                               "keep one")
    rename = {columns[0]: field for field, columns in found.items() if columns[0] != field}
    return variants.rename(columns=rename) if rename else variants


def _loci(variants, length, offset):
    """The windows' loci: a 1-bp locus [p - 1, p) is centred at index L // 2, shifted so the variant lands at
    ``offset``."""
    shift = length // 2 - offset
    return pd.DataFrame({"chrom": variants["chrom"], "start": variants["pos"] - 1 + shift,
                         "end": variants["pos"] + shift, "line": variants["line"]})


def _offset(length, offset):
    """``offset``, default ``length // 2``, checked to be inside the window."""
    offset = length // 2 if offset is None else offset
    if not 0 <= offset < length:
        raise ArgminnError(f"the variant's offset (--offset, offset=) {offset} is outside the {length}-bp window: "
                           f"give 0 to {length - 1}")
    return offset


def variants_inside(variants, fasta_path, length, path="variants", offset=None):
    """The variants whose ``length``-bp window (variant at ``offset``, default ``length // 2``) lies inside a
    chromosome of the FASTA; how many were left out is printed to stderr (``--skip-outside``)."""
    from .data import skip_outside

    offset = _offset(length, offset)
    loci = _loci(variant_table(variants, path), length, offset).reset_index(drop=True)
    loci["row"] = range(len(loci))  # kept by position: two tables joined can repeat a line number
    kept = skip_outside(loci, open_fasta(fasta_path), length, path, what="variant")
    return variants.iloc[kept["row"].to_numpy()]


def check_variants(variants, fasta_path, length, path="variants", offset=None, skip_option=None):
    """Check every variant's window against the genome; returns (the FASTA, the windows' loci, offset).

    The window of ``length`` bp holds the variant at index ``offset``
    (default ``length // 2``). Each window must lie on a chromosome of the
    FASTA, inside its ends, and hold only A, C, G, T or N; each REF must
    match the genome. A failure is a one-line error naming ``path`` and the
    variant's line. Takes any chrom/pos/ref/alt table, as score_variants does (:func:`variant_table`).
    ``skip_option``: the caller's way to leave out the variants whose window is not inside a chromosome, named
    in that error (default: ``--skip-outside``, and in Python :func:`variants_inside` with the same offset).
    """
    return _check_variants(variant_table(variants, path), fasta_path, length, path, offset, skip_option)


def _check_variants(variants, fasta_path, length, path, offset, skip_option=None):
    """:func:`check_variants` on a table :func:`variant_table` has checked already."""
    fasta = open_fasta(fasta_path)
    given = offset
    offset = _offset(length, offset)
    loci = _loci(variants, length, offset)
    if skip_option is None:
        skip_option = (f"--skip-outside (in Python, variants_inside(variants, fasta, {length}"
                       + (f", offset={given}" if given is not None else "") + ") first)")
    check_intervals(loci, fasta, length, path, skip_option)
    for chrom, pos, ref, lineno in zip(variants["chrom"], variants["pos"], variants["ref"], variants["line"]):
        base = str(fasta[chrom][pos - 1:pos]).upper()
        if base != ref:
            raise ArgminnError(f"{path}: line {lineno}: REF {ref} does not match the genome at {chrom}:{pos} "
                               f"({base}); check the assembly and that positions are 1-based")
    check_letters(fasta, loci, length, fasta_path, source=path)
    return fasta, loci, offset


def variant_windows(variants, fasta_path, length, path="variants", offset=None):
    """One-hot windows holding each variant at index ``offset``, after :func:`check_variants`.

    ``offset`` defaults to ``length // 2`` (tangermeme's centre: the window of
    a 1-bp locus); kipoi-veff's variant-centred windows put the variant at
    ``length // 2 - 1`` (odd lengths too), 1 bp further left in the window (which starts 1 bp later).
    Returns (X (N, 4, L) reference windows, substitutions (N, 3) long tensor of
    (row, position, alt index) for tangermeme, window start per variant).
    """
    return _windows(variant_table(variants, path), fasta_path, length, path, offset)


def _windows(variants, fasta_path, length, path, offset):
    """:func:`variant_windows` on a table :func:`variant_table` has checked already."""
    from tangermeme.io import extract_loci

    fasta, loci, offset = _check_variants(variants, fasta_path, length, path, offset)
    X = extract_loci(loci=loci[["chrom", "start", "end"]], sequences=fasta, in_window=length, verbose=False,
                     ignore=["N"]).float()
    subs = torch.tensor([[i, offset, ALPHABET.index(a)] for i, a in enumerate(variants["alt"])], dtype=torch.long)
    starts = (variants["pos"].to_numpy() - 1) - offset
    return X, subs, starts


@in_eval_mode
def score_variants(model, variants, fasta_path, batch_size=256, device="cpu", path="variants", offset=None):
    """tangermeme substitution effect of every SNV on the model's logits.

    ``variants``: :func:`read_variants`' output or a DataFrame with chrom,
    pos (1-based), ref and alt columns (:func:`variant_table`). ``offset``:
    the variant's index in the window (default ``L // 2``).

    Returns the variants table with, per task, ``<task>_ref``, ``<task>_alt``
    and ``<task>_diff`` (alt - ref, logits).
    """
    from tangermeme.variant_effect import substitution_effect

    device = check_device(device)  # before the windows are cut
    variants = variant_table(variants, path)
    X, subs, starts = _windows(variants, fasta_path, model.config.input_length, path, offset)
    before, after = substitution_effect(model, X, subs, batch_size=batch_size, device=device, verbose=False)
    out = variants.drop(columns=["line"]).copy()
    out["window_start"] = starts
    for t, name in enumerate(model.config.names):
        out[f"{name}_ref"] = before[:, t].numpy()
        out[f"{name}_alt"] = after[:, t].numpy()
        out[f"{name}_diff"] = (after[:, t] - before[:, t]).numpy()
    return out
