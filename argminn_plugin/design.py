"""Interpretable design: discovered motifs placed by the learned syntax into a neutral background.

The learned rule (motif A, motif B, spacing, orientation) comes from the
syntax read-out; the motifs are the discovered filter PPMs (their consensus),
turned into the matched motif's orientation. Backgrounds are
dinucleotide-shuffled sequences (tangermeme). The designed sequences are
scored next to controls that break one part of the rule (wrong spacing, wrong
orientation, one motif only) and, as the black-box comparison, sequences made
by tangermeme's greedy motif substitution.
"""

import contextlib
import numbers
import sys

import numpy as np
import pandas as pd
import torch

from .data import check_device, check_X, decode, in_eval_mode, model_input, one_hot, whole_number
from .errors import ArgminnError, shown
from .motifs import consensus, scans_both_strands

COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")
SYNTAX_COLUMNS = ("motif_a", "motif_b", "spacing", "orientation")  # what design_report reads of syntax.tsv


def read_syntax(instance_dir):
    """``instance_dir/syntax.tsv`` (``argminn instances``' syntax read-out), checked as design reads it."""
    import os

    from .fileio import read_tsv

    path = os.path.join(instance_dir, "syntax.tsv")
    if not os.path.isfile(path):
        raise ArgminnError(f"{instance_dir}: no syntax.tsv; run 'argminn instances' first")
    return read_tsv(path, "syntax table", SYNTAX_COLUMNS, "run 'argminn instances' again")


def oriented_motif(ppm, ann):
    """(consensus string in the matched motif's orientation, its offset within the matched motif, the matched
    motif's width); without a match, the consensus is the whole motif."""
    seq = consensus(np.asarray(ppm)).upper()
    if "offset" not in ann:
        return seq, 0, len(seq)
    if ann["flip"]:
        return seq.translate(COMPLEMENT)[::-1], ann["width"] - ann["offset"] - len(seq), ann["width"]
    return seq, ann["offset"], ann["width"]


def _parts(motif):
    """(string, offset, matched width) of a motif given as :func:`oriented_motif` returns it, or as (string,
    offset): then the matched motif is taken to end where the string does (which places B on the other strand
    by the string alone)."""
    string, offset, *width = motif
    return string, offset, (width[0] if width else offset + len(string))


def place(X, motifs, positions):
    """Copy of X (N, 4, L) with motif strings written at the given window positions."""
    X = X.clone()
    for motif, pos in zip(motifs, positions):
        if pos < 0 or pos + len(motif) > X.shape[-1]:
            raise ArgminnError(f"motif {motif} at {pos} does not fit a {X.shape[-1]}-bp window")
        X[:, :, pos:pos + len(motif)] = one_hot(motif)
    return X


def _mirrored(sites, length):
    """The same sites read from the other strand: each motif reverse-complemented where its mirror image lies."""
    return [(motif.translate(COMPLEMENT)[::-1], length - pos - len(motif)) for motif, pos in sites]


def layouts(a, b, spacing, orientation, length, names=("A", "B"), *, start, far, a_strand="+"):
    """Designs and controls: name -> list of (motif string, window position).

    a, b: (string, offset within the matched motif, matched motif's width)
    from :func:`oriented_motif` (or (string, offset)); A's matched motif
    starts at ``start``, B's ``spacing`` bp later, on A's strand when
    ``orientation`` is 'same', else reverse-complemented over its matched
    motif's span (as the syntax read-out measures it and the simulation
    plants it). The wrong-spacing control puts B ``far`` bp after A
    (:func:`fitting_starts` picks it). ``a_strand`` '+' puts A's matched
    motif on the plus strand; '-' mirrors the whole layout onto the other
    strand (every site reverse-complemented and mirrored: A on the minus
    strand, its matched motif's leftmost window base still ``start``), for a
    model that scans one strand and reads A reverse-complemented
    (:func:`design_strand`).
    """
    if a_strand not in ("+", "-"):
        raise ArgminnError(f"a_strand must be '+' or '-' (the strand A's matched motif is read on), "
                           f"got {a_strand!r}")
    if a_strand == "-":
        plus = layouts(a, b, spacing, orientation, length, names, start=length - start - _parts(a)[2], far=far)
        return {name: _mirrored(sites, length) for name, sites in plus.items()}
    if orientation not in ("same", "opposite"):
        raise ArgminnError(f"orientation must be 'same' or 'opposite' (as the syntax read-out writes it), "
                           f"got {orientation!r}")
    if isinstance(spacing, bool) or not isinstance(spacing, numbers.Integral):
        raise ArgminnError(f"spacing must be a whole number of bases, got {spacing!r}")
    if names[0] == names[1]:
        raise ArgminnError(f"names: the two motifs are both called {names[0]!r}; design places two different "
                           "motifs, each control named after one")
    (sa, oa, _), (sb, ob, wb) = _parts(a), _parts(b)
    wrong_orientation = "opposite" if orientation == "same" else "same"

    def b_at(s, orient):
        if orient == "same":
            return (sb, start + s + ob)
        # the other strand: B reverse-complemented over its matched motif's span
        return (sb.translate(COMPLEMENT)[::-1], start + s + wb - ob - len(sb))

    a_site = (sa, start + oa)
    return {
        "learned syntax": [a_site, b_at(spacing, orientation)],
        "wrong spacing": [a_site, b_at(far, orientation)],
        "wrong orientation": [a_site, b_at(spacing, wrong_orientation)],
        f"only {names[0]}": [a_site],
        f"only {names[1]}": [b_at(spacing, orientation)],
        "background": [],
    }


def _fits(sites, length):
    return all(0 <= pos and pos + len(motif) <= length for motif, pos in sites)


def fitting_starts(a, b, spacing, orientation, length, a_strand="+"):
    """(every start of A's matched motif at which all designs and controls fit the window, the wrong spacing;
    ``a_strand`` as in :func:`layouts`).

    The wrong spacing is one value at every start: 15 bp further than the
    learned one where that fits at some start, else 15 bp closer, else the
    spacing nearest to those (16 bp off, 17, ...) that fits; never one that
    would write B over A's bases.
    """
    sa, oa, _ = _parts(a)
    tried = [spacing + 15, spacing - 15] + [spacing + sign * d for d in range(16, 2 * length) for sign in (1, -1)]
    for far in tried:
        (_, pa), (sb, pb) = layouts(a, b, spacing, orientation, length, start=0, far=far,
                                    a_strand=a_strand)["wrong spacing"]
        if pa < pb + len(sb) and pb < pa + len(sa):
            continue  # B over A: not a wrong spacing of the pair but a damaged A
        fits = [s for s in range(-2 * length, 2 * length)
                if all(_fits(sites, length) for sites in layouts(a, b, spacing, orientation, length, start=s,
                                                                far=far, a_strand=a_strand).values())]
        if fits:
            return fits, far
    raise ArgminnError(f"the designs ({len(a[0])}- and {len(b[0])}-bp motifs {spacing} bp apart, with a "
                       f"wrong-spacing control that keeps B off A) do not fit a {length}-bp window")


def _every(fits, step):
    """Every ``step``-th of the fitting starts, the leftover split between both ends."""
    if not _whole(step) or step < 1:
        raise ArgminnError(f"the step between design starts must be an integer >= 1, got {step!r}")
    step = int(step)
    return fits[(len(fits) - 1) % step // 2::step]


def _sd(values):
    """The sample standard deviation; NaN for one value (torch warns and returns NaN there)."""
    return float(values.std()) if len(values) > 1 else float("nan")


def _whole(value):
    try:
        return not isinstance(value, (bool, str)) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False


def _checked_starts(starts, fits, length):
    """``starts`` as a list of ints, each one where the designs and controls fit; else a clear error."""
    if isinstance(starts, (str, bytes)) or not hasattr(starts, "__iter__"):
        raise ArgminnError(f"'starts' must be a list of whole numbers, got {starts!r}")
    starts = list(starts)
    if not starts:
        raise ArgminnError("'starts' is empty: give at least one design start")
    for s in starts:
        if not _whole(s):
            raise ArgminnError(f"'starts' must be whole numbers, got {s!r}")
        if int(s) not in fits:
            raise ArgminnError(f"design start {s}: the designs and controls do not all fit the {length}-bp "
                               f"window there (starts that fit: {fits[0]}..{fits[-1]})")
    if len(set(map(int, starts))) < len(starts):
        raise ArgminnError(f"'starts' repeats a start: {starts!r}; give each start once")
    return [int(s) for s in starts]


def design_starts(a, b, spacing, orientation, length, step=5, starts=None, a_strand="+"):
    """(A's starts at which every design and control fits the window, every ``step`` bp, centred, or ``starts``
    checked; the wrong spacing).

    See :func:`fitting_starts` for the wrong spacing (one value at every start), :func:`layouts` for
    ``a_strand``.
    """
    fits, far = fitting_starts(a, b, spacing, orientation, length, a_strand)
    return (_every(fits, step) if starts is None else _checked_starts(starts, fits, length)), far


def task_index(model, task):
    """The output column of ``task``: a task name of the model (``model.config.names``), or a column index;
    None is the first task."""
    names = model.config.names
    if task is None:
        return 0
    if isinstance(task, str) and task in names:
        return names.index(task)
    if isinstance(task, numbers.Integral) and not isinstance(task, bool) and 0 <= task < len(names):
        return int(task)
    raise ArgminnError(f"task {task!r}: the model's tasks are {', '.join(map(repr, names))} (a name, or an index "
                       f"from 0 to {len(names) - 1})")


@torch.no_grad()
@in_eval_mode
def design_scores(model, backgrounds, a, b, spacing, orientation, names=("A", "B"), batch_size=256, starts=None,
                  step=5, by_start=False, task=None, a_strand="+"):
    """Predicted probability of ``task`` (:func:`task_index`: a name or index; default the first) of every
    design/control over the backgrounds, with the pair at many starts.

    The pair is placed with A's matched motif at each of ``starts`` (a list
    of whole numbers; default: :func:`design_starts` every ``step`` bp),
    since a model that reads spacing through a position encoding need not
    score a layout the same everywhere in the window; ``a_strand`` '-'
    mirrors the layout onto the other strand (:func:`layouts`). Returns a DataFrame:
    design, mean, median, min, max (over backgrounds and starts),
    lowest_start_mean and highest_start_mean (the range of the per-start
    means), n_starts; with ``by_start``, also the per-start table (design,
    start, mean, median, min, max).
    """
    backgrounds = model_input(model, backgrounds)
    task = task_index(model, task)
    length = backgrounds.shape[-1]
    starts, far = design_starts(a, b, spacing, orientation, length, step, starts, a_strand)
    per_start, rows = [], []
    every = {}
    for start in starts:
        for name, sites in layouts(a, b, spacing, orientation, length, names, start=start, far=far,
                                   a_strand=a_strand).items():
            probs = _probabilities(model, place(backgrounds, [m for m, _ in sites], [p for _, p in sites]),
                                   batch_size, task)
            every.setdefault(name, []).append(probs)
            per_start.append({"design": name, "start": start, "mean": probs.mean(),
                              "median": float(np.median(probs)), "min": probs.min(), "max": probs.max()})
    for name, blocks in every.items():
        probs = np.concatenate(blocks)
        means = [block.mean() for block in blocks]
        rows.append({"design": name, "mean": probs.mean(), "median": float(np.median(probs)), "min": probs.min(),
                     "max": probs.max(), "lowest_start_mean": min(means), "highest_start_mean": max(means),
                     "n_starts": len(blocks)})
    table = pd.DataFrame(rows)
    return (table, pd.DataFrame(per_start)) if by_start else table


def _probabilities(model, X, batch_size=256, task=0):
    """Predicted probability (output column ``task``) of each row of X, in batches."""
    return torch.cat([torch.sigmoid(model(X[i:i + batch_size]))[:, task]
                      for i in range(0, len(X), batch_size)]).numpy()


@torch.no_grad()
@in_eval_mode
def designed_sequences(model, backgrounds, a, b, spacing, orientation, starts=None, step=5, batch_size=256,
                       task=None, a_strand="+"):
    """The learned-syntax designs themselves: every background with the pair at every start.

    Returns a DataFrame (background, start, probability, sequence), the
    backgrounds of each start in turn; ``starts``/``step``/``task``/``a_strand`` as
    in :func:`design_scores`.
    """
    backgrounds = model_input(model, backgrounds)
    task = task_index(model, task)
    length = backgrounds.shape[-1]
    starts, far = design_starts(a, b, spacing, orientation, length, step, starts, a_strand)
    parts = []
    for start in starts:
        sites = layouts(a, b, spacing, orientation, length, start=start, far=far, a_strand=a_strand)["learned syntax"]
        X = place(backgrounds, [m for m, _ in sites], [p for _, p in sites])
        parts.append(pd.DataFrame({"background": np.arange(len(X)), "start": start,
                                   "probability": _probabilities(model, X, batch_size, task),
                                   "sequence": decode(X)}))
    return pd.concat(parts, ignore_index=True)


def shuffled_backgrounds(X, n=1, random_state=0):
    """Dinucleotide-shuffled copies of X (tangermeme), (N * n, 4, L)."""
    from tangermeme.ersatz import dinucleotide_shuffle

    X = check_X(X)
    shuffled = dinucleotide_shuffle(X, n=n, random_state=random_state)
    return shuffled.reshape(-1, *X.shape[1:]).float()


class _TaskOutput(torch.nn.Module):
    """The model's logit of one task, as an (N, 1) output (what tangermeme's design functions push)."""

    def __init__(self, model, task):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, X):
        return self.model(X)[:, self.task:self.task + 1]


def greedy_design(model, backgrounds, motifs, max_iter=2, device="cpu", task=None):
    """Black-box comparison: tangermeme greedy substitution of the motif strings, pushing ``task``'s logit up
    (:func:`task_index`; default the first task)."""
    from tangermeme.design import greedy_substitution

    device = check_device(device)
    backgrounds = model_input(model, backgrounds)
    # in the model's own mode: tangermeme puts a model back in the mode it found it in, and a new module's is
    # training, which the wrapper would pass on to the model
    one = _TaskOutput(model, task_index(model, task)).train(model.training)
    designed = []
    for i in range(len(backgrounds)):
        # no target (y None): each step takes the insertion that raises the logit most (a target value with
        # tangermeme's squared error would pull a logit above it down)
        out = greedy_substitution(one, backgrounds[i:i + 1], None, motifs=list(motifs), max_iter=max_iter,
                                  device=device, verbose=False)
        designed.append(out)
    return torch.cat(designed).to(backgrounds.dtype)  # the model's dtype, as its input


def design_strand(model, ann):
    """The strand to lay a design out on (:func:`layouts`' ``a_strand``): '-' where ``model`` scans one strand
    and its filter reads A (annotation ``ann``, :func:`oriented_motif`'s) reverse-complemented, so that A's
    filter sees the designs; else '+' (a model that scans both strands sees either)."""
    return "-" if not scans_both_strands(model) and ann.get("flip") else "+"


def unseen_b(model, ann_a, ann_b, orientation):
    """Whether ``model`` scans one strand and reads B (annotation ``ann_b``) on the other strand than the rule
    puts it on, given how it reads A (``ann_a``): a rule read from the model's own calls with one filter per
    motif never does (a call's strand is its filter's flip), but with two filters of one motif name the one
    designed with (:func:`rule_filters`) can; no layout then shows both filters their motifs."""
    if scans_both_strands(model):
        return False
    return (bool(ann_a.get("flip")) == bool(ann_b.get("flip"))) != (orientation == "same")


def rule_filters(annotation, ppms, names, motif_dir):
    """The filter each of ``names`` (a rule's motifs) is designed with: among the active filters (those with a
    PPM in motifs.meme) named so, the one whose TOMTOM match is best (lowest q; the lowest-numbered on a tie).
    The syntax read-out counts instances by motif name, so two filters matched to one motif share its rules."""
    chosen = {}
    for f, ann in sorted(annotation.items()):
        name = ann["name"]
        if f"filter{f}" in ppms and (name not in chosen or
                                     ann.get("q", 1.0) < annotation[chosen[name]].get("q", 1.0)):
            chosen[name] = f
    missing = [name for name in names if name not in chosen]
    if missing:
        raise ArgminnError(f"motif {missing[0]!r} of the learned rule is not an active filter in {motif_dir}")
    return [chosen[name] for name in names]


def design_report(model, X, motif_dir, syntax, out_dir, n_backgrounds=100, n_greedy=4, force=False,
                  random_state=0, positives=None, step=5, head_weights="motifs", task=None):
    """Design by the learned syntax over shuffled backgrounds of X, scored on ``task`` (:func:`task_index`: a
    name or index; default the first task, named in design.tsv and effects.tsv); writes design.tsv,
    design_starts.tsv, designs.fa, design.png, effects.tsv.

    syntax: the syntax read-out table (``syntax.tsv``); its top row is the
    rule used. Designs and controls are scored with the pair at every
    ``step`` bp along the window (:func:`design_scores`); design_starts.tsv
    holds the scores at each start, and design.png plots both; designs.fa
    the designed sequences themselves (:func:`designed_sequences`, then the
    greedy ones), each named with its background, start and predicted
    probability. Both motifs must be active filters in ``motif_dir`` (named
    after their matched motif, or filterN without a match); a motif matched
    by two filters is designed with the better match (:func:`rule_filters`).
    A model that scans one strand and reads A reverse-complemented is
    designed for with the layout mirrored onto the other strand
    (:func:`design_strand`; said on stderr, and the ``rule`` column ends in
    "A on the minus strand").
    effects.tsv holds :func:`motif_effects`
    (marginalization and cooperativity on the backgrounds, over the same
    starts; with ``positives``, knock-outs of the called instances, the
    heads weighed as ``head_weights`` says, as in
    :func:`argminn_plugin.interpret.instance_report`). Returns the score
    table (designs, controls, and the greedy black-box designs).
    """
    import os

    from .fileio import atomic_write, check_writable, output_set, pyplot, save_png, write_fasta
    from .interpret import call_instances, read_annotation, resolve_head_weights
    from .motifs import read_meme

    for name, value, lowest in (("n_backgrounds", n_backgrounds, 1), ("n_greedy", n_greedy, 0)):
        if not _whole(value) or value < lowest:
            raise ArgminnError(f"design: '{name}' must be an integer >= {lowest}, got {value!r}")
    outputs = ("design.tsv", "design_starts.tsv", "designs.fa", "design.png", "effects.tsv")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ArgminnError(f"{out_dir}: exists and is not a directory")
    for name in outputs:
        check_writable(os.path.join(out_dir, name), force)
    if len(syntax) == 0:
        raise ArgminnError("the syntax read-out is empty: no pair of motifs to design with")
    rule = syntax.iloc[0]
    spacing = rule["spacing"]
    if isinstance(spacing, str):
        with contextlib.suppress(ValueError):  # a text that is not a whole number is refused below
            spacing = whole_number(spacing)
    if not _whole(spacing) or rule["orientation"] not in ("same", "opposite"):
        raise ArgminnError(f"the syntax read-out's top rule has spacing {shown(rule['spacing'])} and orientation "
                           f"{shown(rule['orientation'])}: a whole number of bp and 'same' or 'opposite' are needed "
                           "(run 'argminn instances' again)")
    spacing = int(spacing)
    task = task_index(model, task)
    if rule["motif_a"] == rule["motif_b"]:
        raise ArgminnError(f"the syntax read-out's top rule pairs {rule['motif_a']!r} with itself: design places "
                           "two different motifs (the read-out leaves same-motif pairs out; run 'argminn "
                           "instances' again)")
    X = check_X(X)
    clean = (X.sum(1) > 0).all(1)  # the shuffle takes A, C, G, T only: windows with an N are not backgrounds
    if not clean.any():
        raise ArgminnError(f"every one of the {len(X)} background window(s) holds an N; design needs windows "
                           "of A, C, G and T to shuffle")
    if not clean.all():
        print(f"design: left out {int((~clean).sum())} of {len(X)} background window(s) holding an N (the "
              "shuffle takes A, C, G and T only)", file=sys.stderr)
    X = X[clean]
    annotation, active = read_annotation(motif_dir, model=model)
    weights, _ = resolve_head_weights(head_weights, motif_dir, model, "design")
    ppms = read_meme(os.path.join(motif_dir, "motifs.meme"))
    filters = rule_filters(annotation, ppms, (rule["motif_a"], rule["motif_b"]), motif_dir)
    motifs = [oriented_motif(ppms[f"filter{f}"], annotation[f]) for f in filters]
    a_strand = design_strand(model, annotation[filters[0]])
    if a_strand == "-":
        print(f"design: this model scans one strand and its filter{filters[0]} reads {rule['motif_a']} "
              "reverse-complemented: the designs and controls are mirrored onto the other strand (A on the minus "
              "strand)", file=sys.stderr)
    if unseen_b(model, annotation[filters[0]], annotation[filters[1]], rule["orientation"]):
        print(f"design: this model scans one strand, and its filter{filters[1]} reads {rule['motif_b']} on the "
              f"other strand than the rule's {rule['orientation']!r} orientation puts it on (given how "
              f"filter{filters[0]} reads {rule['motif_a']}): that filter does not see B in the designs",
              file=sys.stderr)
    backgrounds = shuffled_backgrounds(X[:n_backgrounds], n=1, random_state=random_state)
    table, per_start = design_scores(model, backgrounds, motifs[0], motifs[1], spacing,
                                     rule["orientation"], names=(rule["motif_a"], rule["motif_b"]), step=step,
                                     by_start=True, task=task, a_strand=a_strand)
    designs = designed_sequences(model, backgrounds, motifs[0], motifs[1], spacing,
                                 rule["orientation"], step=step, task=task, a_strand=a_strand)
    names = [f"learned_syntax|background={r.background}|start={r.start}|p={r.probability:.4f}"
             for r in designs.itertuples()]
    sequences = list(designs["sequence"])
    if n_greedy:
        greedy = greedy_design(model, backgrounds[:n_greedy], [m[0] for m in motifs], task=task)
        with torch.no_grad():
            probs = torch.sigmoid(model(greedy))[:, task].float().numpy()
        names += [f"greedy|background={i}|p={p:.4f}" for i, p in enumerate(probs)]
        sequences += decode(greedy)
        table.loc[len(table)] = {"design": "greedy (tangermeme, black box)", "mean": probs.mean(),
                                 "median": float(np.median(probs)), "min": probs.min(), "max": probs.max(),
                                 "lowest_start_mean": np.nan, "highest_start_mean": np.nan, "n_starts": np.nan}
    table["n_starts"] = table["n_starts"].astype("Int64")
    table.insert(1, "rule", f"{rule['motif_a']} then {rule['motif_b']} {int(rule['spacing']):+d} bp, "
                             f"{rule['orientation']} strand" + (", A on the minus strand" if a_strand == "-" else ""))
    table.insert(2, "task", model.config.names[task])
    calls = None if positives is None else call_instances(model, positives, annotation, filters=active,
                                                          head_weights=weights)
    effects = motif_effects(model, backgrounds, dict(zip((rule["motif_a"], rule["motif_b"]), motifs)),
                            spacing, rule["orientation"], positives, calls, random_state=random_state, task=task,
                            step=step, a_strand=a_strand)
    effects.insert(1, "task", model.config.names[task])
    os.makedirs(out_dir, exist_ok=True)
    with output_set(out_dir, outputs, force) as path:  # all, or none
        with atomic_write(path["effects.tsv"], force=True) as handle:
            effects.to_csv(handle, sep="\t", index=False, float_format="%.4f")
        with atomic_write(path["design.tsv"], force=True) as handle:
            table.to_csv(handle, sep="\t", index=False, float_format="%.4f")
        with atomic_write(path["design_starts.tsv"], force=True) as handle:
            per_start.to_csv(handle, sep="\t", index=False, float_format="%.4f")
        write_fasta(path["designs.fa"], names, sequences, force=True)
        fig, (bars, lines) = pyplot().subplots(1, 2, figsize=(11, 3.2), gridspec_kw={"width_ratios": [1, 1.3]})
        bars.barh(table["design"], table["mean"], color="tab:blue")
        bars.set_xlim(0, 1)
        bars.set_xlabel(f"mean predicted probability ({model.config.names[task]})")
        bars.invert_yaxis()
        for name, group in per_start.groupby("design", sort=False):
            lines.plot(group["start"], group["mean"], marker=".", label=name)
        lines.set_ylim(0, 1.02)
        lines.set_xlabel(f"start of {rule['motif_a']} in the window (bp)")
        lines.set_ylabel("mean predicted probability")
        lines.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        save_png(fig, path["design.png"], force=True)
    return table


@torch.no_grad()
def motif_effects(model, backgrounds, motifs, spacing, orientation, positives=None, calls=None, n_shuffles=10,
                  random_state=0, starts=None, step=5, task=None, a_strand="+"):
    """Each motif's marginal effect, the pair's cooperative effect, and knock-outs (tangermeme).

    motifs: {name: (string, offset, matched width)} (:func:`oriented_motif`)
    for motif A then B of the learned rule.
    Marginalization (tangermeme.marginalize) inserts a motif into the
    backgrounds: A alone, B alone, and B into backgrounds already holding A
    at the learned spacing/orientation and at design.tsv's wrong spacing
    (:func:`fitting_starts`); each with the pair at every one of ``starts``
    (default: every ``step`` bp, as :func:`design_scores`; ``a_strand`` as
    there), and the effect is
    the mean over backgrounds and starts, with the range of the per-start
    means. Cooperativity is effect(B | A) - effect(B alone). Ablation
    (tangermeme.ablate) shuffles each motif's top called instance in the
    positives (``calls`` from :func:`argminn_plugin.interpret.call_instances`
    on ``positives``). Effects are mean logit differences (after - before)
    of ``task`` (:func:`task_index`; default the first task).
    """
    from tangermeme.ablate import ablate
    from tangermeme.marginalize import marginalize

    if len(motifs) != 2:
        raise ArgminnError(f"motifs: two motifs of different names are needed (A, then B), got {len(motifs)}")
    (name_a, a), (name_b, b) = list(motifs.items())
    task = task_index(model, task)
    backgrounds = model_input(model, backgrounds, "backgrounds")
    if positives is not None:
        positives = model_input(model, positives, "positives")
    length = backgrounds.shape[-1]
    # the far spacing is design.tsv's wrong spacing
    starts, far = design_starts(a, b, spacing, orientation, length, step, starts, a_strand)
    labels = {"alone_a": f"marginalize {name_a} alone", "alone_b": f"marginalize {name_b} alone",
              "given": f"marginalize {name_b} given {name_a} (learned syntax)",
              "far": f"marginalize {name_b} given {name_a} (wrong spacing, {far} bp)",
              "flip": f"marginalize {name_b} given {name_a} (wrong orientation)"}
    diffs = {key: [] for key in labels}
    for start in starts:
        sites = layouts(a, b, spacing, orientation, length, (name_a, name_b), start=start, far=far,
                        a_strand=a_strand)
        (sa, pa), (sb, pb) = sites["learned syntax"]
        with_a = place(backgrounds, [sa], [pa])
        (_, _), (sw, pw) = sites["wrong spacing"]
        (_, _), (so, po) = sites["wrong orientation"]
        for key, X, motif, pos in (("alone_a", backgrounds, sa, pa), ("alone_b", backgrounds, sb, pb),
                                   ("given", with_a, sb, pb), ("far", with_a, sw, pw), ("flip", with_a, so, po)):
            before, after = marginalize(model, X, motif, start=pos, device="cpu", verbose=False)
            diffs[key].append((after - before)[:, task].double())

    rows = []
    for key, blocks in diffs.items():
        diff = torch.cat(blocks)
        rows.append({"experiment": labels[key], "mean_logit_effect": float(diff.mean()), "sd": _sd(diff),
                     "n": int(len(diff)), "lowest_start_mean": min(float(d.mean()) for d in blocks),
                     "highest_start_mean": max(float(d.mean()) for d in blocks)})
    # every start has every background: the mean over both is the mean of the per-start means
    means = {key: np.array([float(d.mean()) for d in blocks]) for key, blocks in diffs.items()}
    for label, per_start in ((f"cooperativity {name_a}+{name_b} (learned syntax)", means["given"] - means["alone_b"]),
                             (f"sum of single effects {name_a}, {name_b}", means["alone_a"] + means["alone_b"])):
        rows.append({"experiment": label, "mean_logit_effect": float(per_start.mean()), "sd": np.nan,
                     "n": int(len(backgrounds) * len(starts)), "lowest_start_mean": float(per_start.min()),
                     "highest_start_mean": float(per_start.max())})
    if positives is not None and calls is not None:
        for name in (name_a, name_b):
            top = calls[calls["motif"] == name].sort_values("attention", ascending=False).drop_duplicates("sequence")
            diffs = []
            for (start, end), group in top.groupby(["start", "end"]):
                if start < 0 or end > length:
                    continue
                X = positives[torch.tensor(group["sequence"].tolist())]
                before, after = ablate(model, X, int(start), int(end), n=n_shuffles, random_state=random_state,
                                       device="cpu", verbose=False)
                diffs.append((after[..., task].mean(1) - before[:, task]).reshape(-1))
            if diffs:
                diff = torch.cat(diffs)
                rows.append({"experiment": f"ablate called {name} instance in positives",
                             "mean_logit_effect": float(diff.mean()), "sd": _sd(diff), "n": int(len(diff)),
                             "lowest_start_mean": np.nan, "highest_start_mean": np.nan})
    return pd.DataFrame(rows)
