"""The motif report: MEME, logos, TOMTOM vs JASPAR, planted-motif recovery."""

import os

import numpy as np
import pandas as pd

from .errors import ArgminnError
from .fileio import atomic_write, check_writable, dump_json, model_fingerprint, output_set, read_json_object
from .interpret import active_filters, measure_head_weights
from .motifs import (best_matches, column_for_id, extract_motifs, jaspar_database, resolve_method, save_logos,
                     tomtom_qvalues, write_meme)

Q_THRESHOLD = 0.05


def planted_recovery(q, motif_ids, threshold=Q_THRESHOLD):
    """For each planted JASPAR ID: the filters matching it with q < threshold."""
    out = {}
    for mid in motif_ids:
        col = column_for_id(q, mid)
        out[mid] = sorted(q.index[q[col] < threshold].tolist())
    return out


def _planted_ids(path):
    """(the planted JASPAR IDs of a simulation.json, ``config.motif_ids``; the JASPAR release they were read
    from, ``config.jaspar_release``), or an ArgminnError naming the problem."""
    config = read_json_object(path, "simulation.json").get("config")
    ids = config.get("motif_ids") if isinstance(config, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ArgminnError(f"{path}: no planted motif IDs (config.motif_ids) to check the filters against")
    release = config.get("jaspar_release", "JASPAR2024")
    if not isinstance(release, str):
        raise ArgminnError(f"{path}: config.jaspar_release is {release!r}, not the name of a JASPAR release")
    return ids, release


def with_planted(targets, motif_ids, release):
    """``targets`` (name -> PPM) with each planted motif it lacks added from ``release``, as 'ID NAME' (a
    simulation may plant any JASPAR motif, of another release or taxonomic group than the targets')."""
    from .simulate import jaspar_motif

    missing = [m for m in motif_ids if not any(name.split()[0] == m for name in targets)]
    if not missing:
        return targets
    out = dict(targets)
    for motif_id in missing:
        name, ppm = jaspar_motif(motif_id, release)
        out[f"{motif_id} {name}"] = ppm
    return out


def motif_report(model, X, out_dir, force=False, planted=None, targets=None, method="auto"):
    """Write motifs.meme, motifs.tsv, tomtom.tsv, logos.png and report.json to ``out_dir``.

    ``planted``: a simulation.json; each planted motif must then be matched by
    exactly one active filter (q < 0.05); one the targets (by default JASPAR2024's
    CORE vertebrates) lack is added to them from the simulation's release.
    Returns the per-filter table.
    """
    motif_ids, release = _planted_ids(planted) if planted else (None, None)  # a bad file fails before any work
    outputs = ("motifs.meme", "motifs.tsv", "tomtom.tsv", "logos.png", "report.json")
    for name in outputs:
        check_writable(os.path.join(out_dir, name), force)
    targets = targets if targets is not None else jaspar_database()
    if planted:  # (an ID its release lacks fails here, before any work too)
        targets = with_planted(targets, motif_ids, release)
    table, ppms = extract_motifs(model, X, method=method)
    # an uninformative motif (no informative column: a filter that fires on anything) is compared with nothing:
    # kept whole, its flanks would match a long JASPAR matrix (CTCF's) at a tiny q
    informative = set(table.loc[table["informative"], "name"])
    p, q, offsets, strands = tomtom_qvalues({n: m for n, m in ppms.items() if n in informative}, targets,
                                            alignments=True)
    matches = best_matches(p, q, n_best=5)

    # Per filter: its match, and how the trimmed motif sits on it (offset,
    # strand, width), so instances can be given in the match's coordinates.
    cols = ["best_match", "best_q", "match_offset", "match_strand", "match_width"]

    def match(name, target):
        return [target, float(q.at[name, target]), int(offsets.at[name, target]),
                "-" if strands.at[name, target] else "+", int(np.asarray(targets[target]).shape[1])]

    # a filter without a match (inactive, uninformative) leaves its alignment blank: a 0 and '+' would read as
    # a match on the plus strand (whole-number columns that can be blank: pandas' Int64)
    for col, default in zip(cols, ["", np.nan, pd.NA, "", pd.NA]):
        table[col] = pd.array([default] * len(table), dtype="Int64") if default is pd.NA else default
    top = matches[matches["rank"] == 1].set_index("query")["target"]
    for i, name in zip(table.index, table["name"]):
        if name in top.index:
            table.loc[i, cols] = match(name, top[name])

    report = {"model_fingerprint": model_fingerprint(model), "method": resolve_method(method, X),
              "n_filters": int(len(table)),
              "n_active": int(table["active"].sum()), "active": table.loc[table["active"], "name"].tolist(),
              "uninformative": table.loc[table["active"] & ~table["informative"], "name"].tolist()}
    active = active_filters(table)
    if X is not None and active and getattr(model, "architecture", None) == "argminn":
        # How much each (layer, head) attends to these motifs, measured on the sequences they were read from:
        # 'argminn instances', 'variants --motifs' and 'design' weigh the heads by it, so a sequence's calls
        # do not depend on the sequences called beside it (interpret.attention_scan).
        report["head_weights"] = measure_head_weights(model, X, filters=active).tolist()
        report["head_weights_sequences"] = int(len(X))
    if planted:
        recovery = planted_recovery(q, motif_ids)
        report["planted"] = recovery
        report["each_planted_motif_found_by_exactly_one_filter"] = all(len(v) == 1 for v in recovery.values())
        report["planted_q"] = {mid: {n: float(q.at[n, column_for_id(q, mid)]) for n in q.index}
                               for mid in motif_ids}
        named = {}
        for mid in motif_ids:  # a filter that found a planted motif is named and aligned after it
            for name in recovery[mid]:
                table.loc[table["name"] == name, cols] = match(name, column_for_id(q, mid))
                named.setdefault(name, []).append(column_for_id(q, mid))
        matches = best_matches(p, q, n_best=5, also=named)  # and tomtom.tsv ranks that match, however low

    with output_set(out_dir, outputs, force) as staged:  # all five, or none if interrupted
        write_meme(staged["motifs.meme"], ppms, force=True, nsites=dict(zip(table["name"], table["n_seqlets"])))
        save_logos(ppms, staged["logos.png"], force=True, title="ARGMINN filters (active)")
        with atomic_write(staged["motifs.tsv"], force=True) as handle:
            table.to_csv(handle, sep="\t", index=False)
        with atomic_write(staged["tomtom.tsv"], force=True) as handle:
            matches.to_csv(handle, sep="\t", index=False)
        with atomic_write(staged["report.json"], force=True) as handle:
            dump_json(report, handle, indent=2)
    if planted:
        print(f"planted motifs -> filters with TOMTOM q < {Q_THRESHOLD}: {report['planted']}")
    return table
