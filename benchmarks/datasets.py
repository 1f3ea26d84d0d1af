"""Six simulated benchmark datasets: real JASPAR motifs planted by a grammar.

In the spirit of the six simulated benchmarks of the ARGMINN paper: every
dataset plants JASPAR2024 matrices (read offline by pyjaspar) into uniform
random background under its own rule, with the ground truth (every planted
instance) saved. Each dataset is written like the default data
(``argminn simulate``): genome.fa with one chromosome per split (chr1 train,
chr2 valid, chr3 test), a labelled peaks.bed, instances.tsv, motifs.meme (the
planted matrices) and simulation.json (rule, relevant and distractor motifs),
so ``argminn train --fasta ... --bed ...`` and every tool here read it as-is.

Grammars (positives / negatives):

- ``single_motif``: SPI1 present (1-2 copies, any strand) / background only.
- ``and_pair``: GATA1 and CEBPB both present, anywhere / none, or only one.
- ``fixed_spacing``: FOXA2 starts 22 bp after HNF4A, same strand / the pair at
  another spacing (>= 6 bp off) or one motif alone.
- ``fixed_orientation``: SPI1 and GATA1 on the same strand, any spacing /
  the two on opposite strands, or one alone. (Non-palindromic motifs, so the
  orientation is defined.)
- ``or_pairs``: (GATA1 and CEBPB) or (HNF4A and FOXA2) / none, one motif
  alone, or a mixed pair (one from each pair), a third each.
- ``distractors``: SPI1 and FOXA2 both present / none or only one; every
  sequence, positive or negative, also carries two of CTCF, REST, HNF4A and
  CEBPB, which carry no information about the label.

Each instance is drawn from its matrix raised to ``sharpness`` (2 by default,
as for the default data) so that it stands out of a 200-bp background.

Labels follow what was planted; the background is not searched for chance
copies. A short motif's consensus turns up by chance: GATA1's (7 bp) in
about 2% of windows, FOXA2's (8 bp) in about 0.6%. In and_pair, fixed_orientation and or_pairs,
0.4-1.5% of the test negatives hold such a copy that completes the rule
(seeds 0-2, exact copies only). A model that reads the rule scores those
negatives like the positives; see the top-level README, "Datasets".
``benchmarks.errors`` counts such negatives apart (exact copies).
"""

import dataclasses
import os

import numpy as np

from argminn_plugin.simulate import _rc_codes, _sample_motif, jaspar_motif, write_dataset

MOTIFS = {"SPI1": "MA0080.7", "GATA1": "MA0035.5", "CEBPB": "MA0466.4", "HNF4A": "MA0114.5",
          "FOXA2": "MA0047.4", "CTCF": "MA0139.2", "REST": "MA0138.3"}


@dataclasses.dataclass(frozen=True)
class Grammar:
    name: str
    relevant: tuple
    distractors: tuple
    rule: str


GRAMMARS = {
    "single_motif": Grammar("single_motif", ("SPI1",), (), "positive iff SPI1 is present"),
    "and_pair": Grammar("and_pair", ("GATA1", "CEBPB"), (), "positive iff GATA1 and CEBPB are both present"),
    "fixed_spacing": Grammar("fixed_spacing", ("HNF4A", "FOXA2"), (),
                             "positive iff FOXA2 starts 22 bp after HNF4A on the same strand"),
    "fixed_orientation": Grammar("fixed_orientation", ("SPI1", "GATA1"), (),
                                 "positive iff SPI1 and GATA1 are on the same strand (any spacing)"),
    "or_pairs": Grammar("or_pairs", ("GATA1", "CEBPB", "HNF4A", "FOXA2"), (),
                        "positive iff (GATA1 and CEBPB) or (HNF4A and FOXA2)"),
    "distractors": Grammar("distractors", ("SPI1", "FOXA2"), ("CTCF", "REST", "HNF4A", "CEBPB"),
                           "positive iff SPI1 and FOXA2 are both present; two of CTCF, REST, HNF4A, "
                           "CEBPB in every sequence"),
}

SPACING = 22
SPACING_MARGIN = 6


def _strand(rng):
    return "+" if rng.random() < 0.5 else "-"


def _free(*names, rng):
    """Blocks of one motif each, on random strands."""
    return [[(name, 0, _strand(rng))] for name in names]


def _layout(name, rng, label, widths):
    """The blocks of one sequence: lists of (motif, offset in block, strand); a block is placed as a unit."""
    r = rng.random()
    if name == "single_motif":
        return _free(*(["SPI1"] * int(rng.integers(1, 3))), rng=rng) if label else []
    if name == "and_pair":
        if label:
            return _free("GATA1", "CEBPB", rng=rng)
        return [] if r < 1 / 3 else _free("GATA1" if r < 2 / 3 else "CEBPB", rng=rng)
    if name == "fixed_spacing":
        if label:
            spacing = SPACING
        elif r < 0.5:
            return _free("HNF4A" if r < 0.25 else "FOXA2", rng=rng)
        else:
            spacing = SPACING
            while abs(spacing - SPACING) < SPACING_MARGIN:
                spacing = int(rng.integers(widths["HNF4A"], 120))
        block = [("HNF4A", 0, "+"), ("FOXA2", spacing, "+")]
        return [_flip(block, widths) if rng.random() < 0.5 else block]
    if name == "fixed_orientation":
        if not label and r < 0.2:
            return _free("SPI1" if r < 0.1 else "GATA1", rng=rng)
        first = _strand(rng)
        second = first if label else ("-" if first == "+" else "+")
        return [[("SPI1", 0, first)], [("GATA1", 0, second)]]
    if name == "or_pairs":
        if label:
            return _free(*(("GATA1", "CEBPB") if r < 0.5 else ("HNF4A", "FOXA2")), rng=rng)
        if r < 1 / 3:
            return []
        if r < 2 / 3:
            return _free(str(rng.choice(["GATA1", "CEBPB", "HNF4A", "FOXA2"])), rng=rng)
        return _free(str(rng.choice(["GATA1", "CEBPB"])), str(rng.choice(["HNF4A", "FOXA2"])), rng=rng)
    if name == "distractors":
        noise = [str(m) for m in rng.choice(list(GRAMMARS[name].distractors), size=2, replace=False)]
        if label:
            core = ["SPI1", "FOXA2"]
        else:
            core = [] if r < 1 / 3 else ["SPI1" if r < 2 / 3 else "FOXA2"]
        return _free(*core, *noise, rng=rng)
    raise ValueError(name)


def _flip(block, widths):
    """The block on the other strand: mirrored offsets, swapped strands."""
    span = max(off + widths[m] for m, off, _ in block)
    return [(m, span - off - widths[m], "-" if s == "+" else "+") for m, off, s in block]


def _place(blocks, length, widths, rng, tries=200):
    """Random non-overlapping starts for the blocks, or None."""
    spans = [max(off + widths[m] for m, off, _ in b) for b in blocks]
    for _ in range(tries):
        taken, starts = np.zeros(length, bool), []
        for span in spans:
            ok = False
            for _ in range(50):
                s = int(rng.integers(0, length - span + 1))
                if not taken[max(0, s - 1):s + span + 1].any():
                    taken[s:s + span] = True
                    starts.append(s)
                    ok = True
                    break
            if not ok:
                break
        if len(starts) == len(blocks):
            return starts
    return None


def sample_grammar(name, n, length, ppms, rng, sharpness=2.0, positive_fraction=0.5):
    """n windows of dataset ``name``: (codes (n, length), labels (n,), instances)."""
    widths = {m: ppm.shape[1] for m, ppm in ppms.items()}
    codes = rng.integers(0, 4, size=(n, length))
    labels = (rng.random(n) < positive_fraction).astype(np.int64)
    instances = []
    for i in range(n):
        blocks = _layout(name, rng, int(labels[i]), widths)
        starts = _place(blocks, length, widths, rng)
        if starts is None:
            raise ValueError(f"{name}: could not place {blocks} in {length} bp")
        for block, start in zip(blocks, starts):
            for motif, off, strand in block:
                seq = _sample_motif(ppms[motif], rng, 0.0, sharpness)
                s = start + off
                codes[i, s:s + len(seq)] = seq if strand == "+" else _rc_codes(seq)
                instances.append((i, motif, s, s + len(seq), strand))
    return codes, labels, instances


def write_benchmark(out_dir, name, n_train=6000, n_valid=1000, n_test=1000, length=200, seed=0, force=False):
    """Write dataset ``name`` to ``out_dir`` (the layout of ``argminn simulate``); returns its summary."""
    grammar = GRAMMARS[name]
    used = grammar.relevant + grammar.distractors
    loaded = {m: jaspar_motif(MOTIFS[m]) for m in used}
    ppms = {m: ppm for m, (_, ppm) in loaded.items()}
    # (numpy takes [seed, 0] as seed alone: single_motif's stream is that of `argminn simulate --seed` too, so
    # the two share their background; kept, as every recorded benchmark figure was drawn so)
    rng = np.random.default_rng([seed, list(GRAMMARS).index(name)])
    summary = {"benchmark": name, "rule": grammar.rule, "splits": {"train": "chr1", "valid": "chr2", "test": "chr3"},
               "task_names": ["label"], "length": length, "seed": seed,
               "relevant": {m: MOTIFS[m] for m in grammar.relevant},
               "distractors": {m: MOTIFS[m] for m in grammar.distractors},
               "config": {"motif_ids": [MOTIFS[m] for m in grammar.relevant]}}
    write_dataset(out_dir, lambda split, n: sample_grammar(name, n, length, ppms, rng),
                  {"train": n_train, "valid": n_valid, "test": n_test},
                  [(f"{MOTIFS[m]} {m}", ppms[m]) for m in used], summary, length, 50, rng, force)
    return summary


def write_all(out_dir, names=None, force=False, **sizes):
    """Every benchmark dataset under ``out_dir/<name>``; returns name -> directory."""
    dirs = {}
    for name in names or GRAMMARS:
        dirs[name] = os.path.join(out_dir, name)
        write_benchmark(dirs[name], name, force=force, **sizes)
    return dirs
