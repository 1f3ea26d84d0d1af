"""Reading motif instances and syntax off the model itself.

- :func:`call_instances`: motif instances from one forward pass. Every
  scanner position gets the attention the layers/heads put on it (heads
  weighted by how much motif activation they attend to); positions are taken
  in decreasing attention (non-maximum suppression within a filter width),
  each pointing at its top filter activation, which gives (motif, start, end,
  strand, attention, activation). Ranked by attention.
- :func:`fimo_instances`: the usual route for comparison, the discovered motifs
  scanned with memelite's FIMO.
- :func:`coverage_curve`: fraction of true instances covered by the top-k calls.
- :func:`syntax_readout`: pairwise spacing and relative orientation between
  called instances across many sequences.

Signatures follow tangermeme: X is (N, 4, L), with batch_size, device, verbose.
"""

import numpy as np
import pandas as pd
import torch

from .config import HEAD_WEIGHTS
from .data import centred_windows, check_device, check_X, evaluating, model_input
from .errors import ArgminnError, shown


def _chosen_filters(model, filters, device):
    """``filters`` checked, as a sorted index tensor on ``device`` (None: every filter)."""
    if filters is None:
        return None
    given = list(filters)
    if not given or not all(isinstance(f, (int, np.integer)) and 0 <= f < model.config.n_filters for f in given):
        raise ArgminnError(f"instances: 'filters' must name at least one of filters 0..{model.config.n_filters - 1}, "
                           f"got {given}")
    return torch.as_tensor(sorted(int(f) for f in given), dtype=torch.long, device=device)


def _scan_batches(model, X, batch_size, device, verbose, filters):
    """Per batch of X: (attention (n, layers, heads, P), top filter, its activation, its strand (n, P)), on the
    CPU; the model runs on ``device`` in eval mode and goes back where it was, in the mode it was in, also on
    error (as tangermeme's predict does)."""
    from tqdm.auto import tqdm

    device = check_device(device)
    chosen = _chosen_filters(model, filters, device)
    home = next(model.parameters()).device
    model = model.to(device)
    try:
        with evaluating(model):
            for i in tqdm(range(0, len(X), batch_size), disable=not verbose, desc="instances"):
                parts = model.interims(X[i:i + batch_size].to(device))
                if chosen is None:
                    act, filt = parts["activations"].max(1)  # (n, P)
                else:
                    act, pick = parts["activations"][:, chosen].max(1)
                    filt = chosen[pick]
                strand = parts["strand"].gather(1, filt.unsqueeze(1)).squeeze(1)
                yield torch.stack(parts["attention"], 1).cpu(), filt.cpu(), act.cpu(), strand.cpu()
    finally:
        model.to(home)


def _focus(att, act):
    """Per (layer, head): the attention times top activation over positions, summed over the batch's sequences."""
    return (att * act[:, None, None, :]).sum((0, -1))


def _weights_from_focus(focus, head_power):
    return (focus / focus.max().clamp_min(1e-12)) ** head_power


@torch.no_grad()
def measure_head_weights(model, X, batch_size=256, device="cpu", verbose=False, head_power=4.0, filters=None):
    """The (layers, heads) weights :func:`attention_scan` gives the heads over X, measured batch by batch
    (no attention map of all of X is kept): what ``argminn motifs`` saves for the later calls."""
    X = model_input(model, X)
    focus = 0
    for att, _, act, _ in _scan_batches(model, X, batch_size, device, verbose, filters):
        focus = focus + _focus(att, act)
    return _weights_from_focus(focus / len(X), head_power).numpy()


@torch.no_grad()
def attention_scan(model, X, batch_size=256, device="cpu", verbose=False, head_power=4.0, filters=None,
                   head_weights=None):
    """Per sequence and scanner position: the attention score, top filter, its activation and strand.

    ``filters``: the filters a position may point at (default: every filter),
    e.g. the active ones of :func:`argminn_plugin.motifs.extract_motifs`, so
    that a filter the model does not use cannot take a position from a motif;
    the heads are then weighted by the activation of those filters alone.

    Heads differ in what they look at: some follow motif hits, others sit on
    background. Each (layer, head) is weighted by how much motif activation
    it attends to over X (the mean over sequences of sum_p attention * top
    activation, scaled so the largest is 1) raised to ``head_power``; a
    position's score is the weighted sum of the attention it receives. With
    ``head_power=0`` every head counts the same. So a sequence's scores depend
    on the other sequences of X through these weights: ``head_weights`` (the
    (layers, heads) array an earlier call or :func:`measure_head_weights` returned,
    e.g. on the training positives) fixes them, and then each sequence is
    scored alone. Returns (N, P) arrays and the (layers, heads) weights.
    """
    X = model_input(model, X)
    out = {k: [] for k in ("attention", "filter", "activation", "strand")}
    for batch in _scan_batches(model, X, batch_size, device, verbose, filters):
        for k, v in zip(out, batch):
            out[k].append(v)
    scan = {k: torch.cat(v) for k, v in out.items()}
    att = scan.pop("attention")  # (N, layers, heads, P)
    if head_weights is not None:
        weights = torch.as_tensor(np.asarray(head_weights), dtype=att.dtype)
        if tuple(weights.shape) != tuple(att.shape[1:3]) or not torch.isfinite(weights).all():
            raise ArgminnError(f"instances: 'head_weights' must be a finite (layers, heads) = "
                               f"{tuple(att.shape[1:3])} array, as attention_scan returns; got shape "
                               f"{tuple(weights.shape)}")
    else:
        weights = _weights_from_focus(_focus(att, scan["activation"]) / len(X), head_power)
    scan["attention"] = (att * weights[None, :, :, None]).sum((1, 2))
    return {k: v.numpy() for k, v in scan.items()}, weights.numpy()


# What annotation_from_table reads of a motif table
MOTIF_TABLE_COLUMNS = ("filter", "start", "end", "best_match", "best_q", "match_offset", "match_strand",
                       "match_width")


def annotation_from_table(table, q_threshold=0.05):
    """Per-filter annotation for :func:`call_instances` from a ``motifs.tsv`` table.

    Every filter gets its trimmed span (start, end); filters whose best TOMTOM
    match has q < ``q_threshold`` are named after it and aligned to it
    (match_offset, match_strand, match_width), so their instances are reported
    in the matched motif's coordinates and orientation.
    """
    out = {}
    for r in table.itertuples():
        ann = {"name": f"filter{r.filter}", "lo": int(r.start), "hi": int(r.end)}
        if isinstance(r.best_match, str) and r.best_match and r.best_q < q_threshold:
            ann.update(name=r.best_match.split(" ", 1)[-1], offset=int(r.match_offset),
                       flip=r.match_strand == "-", width=int(r.match_width), q=float(r.best_q))
        out[int(r.filter)] = ann
    return out


def read_annotation(motif_dir, q_threshold=0.05, model=None):
    """(annotation, active filters) from ``motif_dir/motifs.tsv``, as ``argminn motifs`` writes it.

    The active filters are the ones instances may point at (``filters`` of
    :func:`call_instances`; none active: no calls); None for a table without
    an ``active`` column. With ``model``, the directory's report.json must
    name that model (``model_fingerprint``; a directory written before it was
    recorded is not checked): another model's filters would be read as this
    one's without any other sign.
    """
    import os

    from .fileio import model_fingerprint, read_tsv

    path = os.path.join(motif_dir, "motifs.tsv")
    if not os.path.isfile(path):
        raise ArgminnError(f"{motif_dir}: no motifs.tsv; run 'argminn motifs' first")
    recorded = _motif_report(motif_dir).get("model_fingerprint") if model is not None else None
    if recorded is not None and recorded != model_fingerprint(model):
        raise ArgminnError(f"{motif_dir}: these motifs were read from another model than the one given "
                           "(report.json's model_fingerprint differs); run 'argminn motifs' with this model "
                           "first")
    table = _checked_motif_table(read_tsv(path, "motif table", MOTIF_TABLE_COLUMNS, "run 'argminn motifs' again"),
                                 path, q_threshold)
    return annotation_from_table(table, q_threshold), active_filters(table) if "active" in table else None


# How a motif table's ``active`` cell may be written (any case): what `argminn motifs` writes, or a hand edit
ACTIVE_WORDS = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}


def _checked_motif_table(table, path, q_threshold=0.05):
    """A motif table read from ``path``, its cells as :func:`annotation_from_table` and :func:`active_filters`
    read them: filter, start, end whole numbers; match_offset and match_width whole numbers, blank only on a row
    without a match (no best_match, or best_q not below ``q_threshold``); best_q a number or blank; active
    True/False or 1/0 (any case; pandas reads a column with a 0 in it as text, where every word would count as
    true). A cell that is none of these is an error naming its row and column."""
    table = table.copy()

    def refuse(column, row, kind):
        raise ArgminnError(f"{path}: row {row + 1} (after the header): {column!r} is "
                           f"{shown(table[column].iloc[row])}, not {kind}; write it so, or run 'argminn motifs' "
                           "again")

    for column, blank_ok, whole in (("filter", False, True), ("start", False, True), ("end", False, True),
                                    ("match_offset", True, True), ("match_width", True, True),
                                    ("best_q", True, False)):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & ~(table[column].isna() & blank_ok)
        if whole:
            bad |= values.notna() & (values % 1 != 0)
        if bad.any():
            refuse(column, int(np.flatnonzero(bad.to_numpy())[0]),
                   ("a whole number" if whole else "a number") + (" or blank" if blank_ok else ""))
        table[column] = values
    matched = table["best_match"].map(lambda v: isinstance(v, str) and bool(v)) & (table["best_q"] < q_threshold)
    for column in ("match_offset", "match_width"):
        blank = matched & table[column].isna()
        if blank.any():
            refuse(column, int(np.flatnonzero(blank.to_numpy())[0]),
                   f"a whole number (the row's best_match has q < {q_threshold}, so the motif is aligned to it)")
    if "active" in table:
        words = table["active"].map(lambda v: str(v).strip().lower())
        bad = ~words.isin(list(ACTIVE_WORDS))
        if bad.any():
            refuse("active", int(np.flatnonzero(bad.to_numpy())[0]), "True or False (or 1 or 0)")
        table["active"] = words.map(ACTIVE_WORDS).astype(bool)
    return table


def check_some_active(motif_dir, active):
    """Refuse a motif directory whose motifs.tsv marks no filter active (``active`` from :func:`read_annotation`):
    no instance can be called from it."""
    if active == []:
        raise ArgminnError(f"{motif_dir}/motifs.tsv: no active filter (the model uses none of its filters as a "
                           "motif), so there are no instances to call")


def _motif_report(motif_dir):
    """``motif_dir/report.json`` as a dict ({} where there is none: a directory written before it was)."""
    import os

    from .fileio import read_json_object

    path = os.path.join(motif_dir, "report.json")
    return read_json_object(path, "motif report") if os.path.isfile(path) else {}


def saved_head_weights(motif_dir, model):
    """The (layers, heads) weights ``argminn motifs`` measured on the sequences it read the motifs from
    (``report.json``'s ``head_weights``), or None where it recorded none (a directory written before they
    were recorded, or motifs read from the weights alone). Checked against the model's layers and heads."""
    saved = _motif_report(motif_dir).get("head_weights")
    if saved is None:
        return None
    shape = (model.config.n_layers, model.config.n_heads)
    try:
        weights = np.asarray(saved, dtype=float)
    except (TypeError, ValueError):
        weights = None
    if weights is None or weights.shape != shape or not np.isfinite(weights).all():
        raise ArgminnError(f"{motif_dir}/report.json: 'head_weights' must be a finite {shape[0]} x {shape[1]} "
                           f"(layers x heads) list, as 'argminn motifs' writes it")
    return weights


def resolve_head_weights(how, motif_dir, model, where):
    """(weights for :func:`attention_scan`, what they are) under ``how``: "motifs" the ones saved in
    ``motif_dir`` (:func:`saved_head_weights`; where there are none, as "called"), "called" None (measured
    over the sequences called). ``where`` names the caller in an error."""
    import os

    if how not in HEAD_WEIGHTS:
        raise ArgminnError(f"{where}: head_weights must be one of {', '.join(map(repr, HEAD_WEIGHTS))}, got "
                           f"{how!r} (an array of weights goes to call_instances / attention_scan)")
    weights = saved_head_weights(motif_dir, model) if how == "motifs" and motif_dir else None
    if weights is None:
        return None, "over the sequences called"
    return weights, f"from {os.path.join(motif_dir, 'report.json')} (the sequences the motifs were read from)"


def active_filters(table):
    """The filters marked active in a motif table (``motifs.tsv``, or :func:`argminn_plugin.motifs.extract_motifs`'s)."""
    return [int(f) for f in table.loc[table["active"].astype(bool), "filter"]]


def _coordinates(p, minus, width, ann):
    """(start, end, minus) of a call at scanner position p in the annotated motif's frame."""
    lo, hi = ann.get("lo", 0), ann.get("hi", width)
    if "offset" not in ann:
        start = p + (width - hi if minus else lo)
        return start, start + hi - lo, minus
    o, w_t = ann["offset"], ann["width"]
    start = (p + width - lo + o - w_t) if minus else (p + lo - o)
    return start, start + w_t, minus != ann["flip"]


def _calls_from_scan(scan, annotation, w, sep, min_attention, max_per_sequence):
    """Rows of :func:`call_instances`: per sequence, positions by falling attention, at least ``sep`` apart."""
    rows = []
    for n in range(scan["attention"].shape[0]):
        att = scan["attention"][n]
        taken = []
        for p in np.argsort(-att, kind="stable"):
            if att[p] <= min_attention or (max_per_sequence and len(taken) >= max_per_sequence):
                break
            if scan["activation"][n, p] <= 0 or any(abs(p - q) < sep for q in taken):
                continue
            taken.append(p)
            f = int(scan["filter"][n, p])
            ann = (annotation or {}).get(f, {})
            start, end, minus = _coordinates(int(p), bool(scan["strand"][n, p]), w, ann)
            rows.append((n, f, ann.get("name", f"filter{f}"), start, end, "-" if minus else "+", float(att[p]),
                         float(scan["activation"][n, p]), len(taken)))
    return rows


def call_instances(model, X, annotation=None, batch_size=256, device="cpu", verbose=False, min_separation=None,
                   max_per_sequence=None, min_attention=0.0, head_power=4.0, filters=None, head_weights=None):
    """Motif instances by tracing attention back to the scanner, in one forward pass.

    annotation: optional {filter: {...}} from :func:`annotation_from_table`
    (name, trimmed span, alignment to the matched motif); without it, calls
    span the whole filter window and are named ``filter<k>``. Returns a
    DataFrame ranked by attention score: sequence, filter, motif, start, end,
    strand, attention, activation, rank (within its sequence). start/end are
    the motif's span, which may reach past the sequence's ends where the
    filter fires at an edge (spacings and effects stay exact; the BED that
    :func:`instance_report` writes is clipped to the window). ``filters``:
    the filters calls may point at (default: all; see :func:`attention_scan`;
    none: no calls). The heads are weighted by what they attend to over X
    (see :func:`attention_scan`), so a sequence's calls can differ with the
    sequences called beside it; ``head_weights`` from an earlier
    :func:`attention_scan` fixes the weights. With an attention sink (ModelConfig.attention_sink) the
    positions' attention leaves out the sink's share, so a ``min_attention``
    compares against less than a model without one gives.
    """
    w = model.config.filter_width
    if min_separation is not None and min_separation < 0:
        raise ArgminnError(f"instances: 'min_separation' must be >= 0 (0: no spacing between calls), "
                           f"got {min_separation}")
    filters = None if filters is None else list(filters)
    rows = []
    if filters != []:  # none: no motif to point at, no calls
        scan, _ = attention_scan(model, X, batch_size, device, verbose, head_power, filters, head_weights)
        rows = _calls_from_scan(scan, annotation, w, w if min_separation is None else min_separation,
                                min_attention, max_per_sequence)
    calls = pd.DataFrame(rows, columns=["sequence", "filter", "motif", "start", "end", "strand", "attention",
                                        "activation", "rank"])
    return calls.sort_values("attention", ascending=False, kind="stable").reset_index(drop=True)


def fimo_instances(motifs, X, threshold=1e-3, overlapping=False):
    """The usual route: motifs (name -> (4, w) PPM) scanned with memelite FIMO; ranked by p-value.

    Without ``overlapping``, a hit overlapping a better one (lower p-value, any motif, either strand) in its
    sequence is dropped, as :func:`call_instances` keeps its calls a filter's width apart: a motif found
    twice, or on both strands, then takes one place in the top-k calls, not two.
    """
    from memelite import fimo

    if not motifs:
        return pd.DataFrame(columns=["sequence", "motif", "start", "end", "strand", "p_value"])
    X = check_X(X)
    hits = fimo({k: np.asarray(v, dtype=np.float64) for k, v in motifs.items()}, X.numpy(), threshold=threshold)
    table = pd.concat([h for h in hits if len(h)], ignore_index=True) if any(len(h) for h in hits) else None
    if table is None:
        return pd.DataFrame(columns=["sequence", "motif", "start", "end", "strand", "p_value"])
    table = table.rename(columns={"sequence_name": "sequence", "motif_name": "motif", "p-value": "p_value"})
    table = table[["sequence", "motif", "start", "end", "strand", "p_value"]].astype({"sequence": int})
    table = table.sort_values("p_value", kind="stable").reset_index(drop=True)
    if overlapping:
        return table
    keep, taken = [], {}
    for i, n, start, end in zip(table.index, table["sequence"], table["start"], table["end"]):
        spans = taken.setdefault(n, [])
        if all(end <= lo or start >= hi for lo, hi in spans):
            spans.append((start, end))
            keep.append(i)
    return table.loc[keep].reset_index(drop=True)


def coverage_curve(calls, truth, k_max=None, min_overlap=0.5):
    """Fraction of true instances covered by the top-k calls, k = 1..k_max (default: number of true instances).

    calls: ranked DataFrame with sequence, start, end; truth: DataFrame with
    sequence, start, end. A true instance is covered by a call in the same
    sequence that overlaps at least ``min_overlap`` of its length.
    """
    if len(truth) == 0:
        raise ArgminnError("no true instances to evaluate against")
    k_max = k_max or len(truth)
    truth = truth.reset_index(drop=True)
    by_seq = {s: g for s, g in truth.groupby("sequence")}
    covered = np.zeros(len(truth), dtype=bool)
    curve = np.zeros(k_max)
    count = 0
    for k, call in enumerate(calls.head(k_max).itertuples(), 1):
        g = by_seq.get(call.sequence)
        if g is not None:
            overlap = np.minimum(g["end"].to_numpy(), call.end) - np.maximum(g["start"].to_numpy(), call.start)
            hit = g.index[overlap >= min_overlap * (g["end"] - g["start"]).to_numpy()]
            new = hit[~covered[hit]]
            covered[new] = True
            count += len(new)
        curve[k - 1] = count / len(truth)
    if len(calls) < k_max:
        curve[len(calls):] = count / len(truth)
    return curve


def syntax_readout(calls, sequences=None, top_per_sequence=2):
    """Pairwise spacing and relative orientation between each sequence's top calls.

    Each pair of calls of different motifs within a sequence's
    ``top_per_sequence`` calls is counted once, ordered so that b starts
    downstream of a along a's strand: the spacing is where b starts relative
    to a's start, along a's strand (bp), and the orientation is 'same' or
    'opposite'. The spacing is negative only for a pair on opposite strands
    facing away from each other. Where either order would do (spacing 0, or
    a pair on opposite strands facing each other, each downstream of the
    other) or neither does (facing away), the pair is named from the
    alphabetically first motif. Returns the counts per (motif_a, motif_b,
    spacing, orientation), most frequent first.
    """
    chosen = calls if sequences is None else calls[calls["sequence"].isin(set(sequences))]
    chosen = chosen[chosen["rank"] <= top_per_sequence] if "rank" in chosen else chosen

    def along(a, b):  # where b starts relative to a's start, along a's strand
        return (b.start - a.start) if a.strand == "+" else (a.end - b.end)

    rows = []
    for _, g in chosen.groupby("sequence"):
        recs = list(g.itertuples())
        for i, a in enumerate(recs):
            for b in recs[i + 1:]:
                if a.motif == b.motif:
                    continue
                if (along(a, b) >= 0) != (along(b, a) >= 0):
                    first, second = (a, b) if along(a, b) >= 0 else (b, a)
                else:  # spacing 0, or opposite strands facing each other or away
                    first, second = (a, b) if a.motif < b.motif else (b, a)
                rows.append((first.motif, second.motif, int(along(first, second)),
                             "same" if a.strand == b.strand else "opposite"))
    table = pd.DataFrame(rows, columns=["motif_a", "motif_b", "spacing", "orientation"])
    if table.empty:
        return table.assign(count=[])
    return (table.groupby(["motif_a", "motif_b", "spacing", "orientation"]).size().rename("count")
            .reset_index().sort_values("count", ascending=False, kind="stable").reset_index(drop=True))


def plot_spacing(syntax, motif_a, motif_b, path, force=False):
    """Histogram of spacings between two motifs (same / opposite orientation) as PNG."""
    from .fileio import pyplot, save_png

    plt = pyplot()
    sub = syntax[(syntax.motif_a == motif_a) & (syntax.motif_b == motif_b)]
    fig, ax = plt.subplots(figsize=(6, 3))
    for orientation, color in (("same", "tab:blue"), ("opposite", "tab:orange")):
        part = sub[sub.orientation == orientation]
        ax.bar(part["spacing"], part["count"], color=color, alpha=0.7, label=f"{orientation} strand")
    ax.set_xlabel(f"start of {motif_b} relative to {motif_a} (bp, along {motif_a}'s strand)")
    ax.set_ylabel("sequences")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path, force=force)


def plot_coverage(curves, path, force=False):
    """Top-k coverage curves (dict label -> array) as PNG."""
    from .fileio import pyplot, save_png

    fig, ax = pyplot().subplots(figsize=(5, 3.5))
    for label, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=label)
    ax.set_xlabel("top-k calls")
    ax.set_ylabel("fraction of true instances covered")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path, force=force)


def instance_report(model, X, bed, motif_dir, out_dir, truth=None, force=False, batch_size=256, device="cpu",
                    head_weights="motifs"):
    """Call instances on X (windows of ``bed``) and write the tables and figures to ``out_dir``.

    Writes instances.tsv (ranked calls with genome coordinates), instances.bed,
    syntax.tsv and spacing.png (the most frequent motif pair). With ``truth``
    (planted instances: sequence, start, end in window coordinates) also
    coverage.tsv and coverage.png: top-k coverage of the attention calls and
    of the motifs in ``motif_dir`` scanned with FIMO. ``head_weights``:
    "motifs" weighs the heads as measured where the motifs were read
    (:func:`saved_head_weights`; each sequence's calls then do not depend on
    the others called; where none were saved, as "called"), "called" over X
    itself. Returns a summary dict.
    """
    import os

    from .fileio import atomic_write, check_writable, output_set
    from .motifs import read_meme

    # Every output this report can write is checked, and those this run does not write are removed at the
    # end (with force; without it they are refused here), so no earlier run's figure or table is left
    # beside tables it does not match.
    names = ["instances.tsv", "instances.bed", "syntax.tsv", "spacing.png", "coverage.tsv", "coverage.png"]
    if truth is not None and len(truth) == 0:  # checked before anything is written
        raise ArgminnError("no true instances to evaluate against")
    for name in names:
        check_writable(os.path.join(out_dir, name), force)
    annotation, active = read_annotation(motif_dir, model=model)
    check_some_active(motif_dir, active)
    weights, weighed = resolve_head_weights(head_weights, motif_dir, model, "instances")
    os.makedirs(out_dir, exist_ok=True)
    calls = call_instances(model, X, annotation, batch_size=batch_size, device=device, filters=active,
                           head_weights=weights)
    length = model.config.input_length
    window_start = centred_windows(bed, length)[0]  # the windows the sequences were read from
    calls.insert(1, "chrom", bed["chrom"].to_numpy()[calls["sequence"]])
    # genome coordinates within the window (a span reaching past the window's ends is cut there)
    calls.insert(2, "genome_start", window_start[calls["sequence"]] + calls["start"].clip(0, length))
    calls.insert(3, "genome_end", window_start[calls["sequence"]] + calls["end"].clip(0, length))
    if "line" in bed.columns:  # the BED line of each call's sequence (sequence counts rows, after any left out)
        calls["line"] = bed["line"].to_numpy()[calls["sequence"]]
    syntax = syntax_readout(calls)
    summary = {"n_sequences": int(len(X)), "n_calls": int(len(calls)), "head_weights": weighed}
    if len(syntax):
        top = syntax.iloc[0]
        summary["top_syntax"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in top.items()}
    if truth is not None:
        fimo_calls = fimo_instances(read_meme(os.path.join(motif_dir, "motifs.meme")), X)
        curves = {"ARGMINN attention": coverage_curve(calls, truth), "FIMO (discovered motifs)":
                  coverage_curve(fimo_calls, truth)}
        frame = pd.DataFrame({"k": np.arange(1, len(truth) + 1), **curves})
        summary["coverage_mean"] = {k: float(v.mean()) for k, v in curves.items()}
        summary["coverage_at_n_true"] = {k: float(v[-1]) for k, v in curves.items()}
    written = names[:3] + (["spacing.png"] if len(syntax) else []) + (names[4:] if truth is not None else [])
    with output_set(out_dir, written, force) as path:  # all, or none
        with atomic_write(path["instances.tsv"], force=True) as handle:
            calls.to_csv(handle, sep="\t", index=False, float_format="%.6g")
        with atomic_write(path["instances.bed"], force=True) as handle:
            best = float(calls["attention"].max()) if len(calls) else 0.0
            for r in calls.itertuples():
                if r.genome_end <= r.genome_start:  # wholly outside the window
                    continue
                # BED's score is an integer 0-1000 (UCSC, bedToBigBed): the attention over the top call's
                score = int(round(1000 * r.attention / best)) if best > 0 else 0
                handle.write(f"{r.chrom}\t{r.genome_start}\t{r.genome_end}\t{r.motif}\t{score}\t{r.strand}\n")
        with atomic_write(path["syntax.tsv"], force=True) as handle:
            syntax.to_csv(handle, sep="\t", index=False)
        if len(syntax):
            plot_spacing(syntax, top["motif_a"], top["motif_b"], path["spacing.png"], force=True)
        if truth is not None:
            with atomic_write(path["coverage.tsv"], force=True) as handle:
                frame.to_csv(handle, sep="\t", index=False, float_format="%.4f")
            plot_coverage(curves, path["coverage.png"], force=True)
    for name in set(names) - set(written):
        if os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))
    return summary


def variant_instances(model, variants, fasta, motif_dir=None, offset=None, batch_size=256, device="cpu",
                      head_weights="motifs"):
    """For each SNV, the called motif instance it falls in (the mechanistic reason for its effect).

    Instances are called by attention on the reference window of each variant
    (the same window :func:`argminn_plugin.variants.score_variants` scores);
    returns one row per variant: hit_motif, hit_start, hit_end (the
    instance's genome span, 0-based and end-exclusive as in BED), hit_strand,
    hit_attention (the highest-attention call covering the variant; empty
    when none does). ``head_weights`` as in :func:`instance_report`: with
    "motifs" (and motifs saved with their weights), a variant's hit does not
    depend on the other variants scored with it.
    """
    import os

    from .variants import variant_windows

    annotation, active = read_annotation(motif_dir, model=model) if motif_dir else (None, None)
    weights, _ = resolve_head_weights(head_weights, motif_dir, model, "variants")
    X, subs, starts = variant_windows(variants, fasta, model.config.input_length, offset=offset)
    calls = call_instances(model, X, annotation, batch_size=batch_size, device=device, filters=active,
                           head_weights=weights)
    pos = subs[:, 1].numpy()
    hits = calls[(calls["start"] <= pos[calls["sequence"]]) & (pos[calls["sequence"]] < calls["end"])]
    best = hits.sort_values("attention", ascending=False, kind="stable").drop_duplicates("sequence")
    best = best.set_index("sequence")
    rows = [(best.at[i, "motif"], int(starts[i] + best.at[i, "start"]), int(starts[i] + best.at[i, "end"]),
             best.at[i, "strand"], float(best.at[i, "attention"])) if i in best.index
            else ("", None, None, "", 0.0) for i in range(len(variants))]
    table = pd.DataFrame(rows, columns=["hit_motif", "hit_start", "hit_end", "hit_strand", "hit_attention"])
    return table.astype({"hit_start": "Int64", "hit_end": "Int64"})
