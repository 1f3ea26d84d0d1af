"""The embedded default dataset: real JASPAR motifs planted with a syntax rule.

Two JASPAR2024 motifs (read offline from pyjaspar) are planted into uniform
random background. The rule: a sequence is positive iff motif A is followed by
motif B with B starting exactly ``spacing`` bp after A's start, both on the
same strand (``orientation`` 'same', the default) or B on the other strand
('opposite'; the pair as a unit may sit on either strand). Negatives are a mix
of empty background, A alone, B alone, and A + B with a wrong spacing or a
wrong relative orientation. Sequences are laid end to end (with random
spacers) on three chromosomes of a small genome: chr1 for training, chr2 for
validation, chr3 for testing, so the data load like any genome + BED data set.

Outputs in the directory: genome.fa, peaks.bed (labelled BED: chrom, start,
end, label), test.bed (its test-chromosome rows), instances.tsv (ground truth: every planted motif instance, with
genome and in-window coordinates), motifs.meme (the planted PPMs) and
simulation.json (the parameters and split chromosomes).
"""

import dataclasses
import os
import typing

import numpy as np

from .config import _Config
from .errors import ArgminnError
from .fileio import atomic_write, check_writable, dump_json, output_set, read_json_object, read_tsv, write_fasta

SPLITS = {"train": "chr1", "valid": "chr2", "test": "chr3"}


@dataclasses.dataclass(frozen=True)
class SimulationConfig(_Config):
    seed: int = 1
    length: int = 200
    motif_ids: typing.Tuple[str, ...] = ("MA0114.5", "MA0047.4")  # HNF4A, FOXA2 (JASPAR2024)
    spacing: int = 22  # B starts this many bp after A's start, along A's strand
    # B on A's strand ('same') or on the other one ('opposite'): the rule's relative orientation
    orientation: str = "same"
    wrong_spacing_margin: int = 6  # wrong spacings differ from `spacing` by at least this
    # Share of the wrong-syntax negatives whose motifs face the wrong relative
    # orientation (the rest have the right orientation at a wrong spacing).
    wrong_orientation_fraction: float = 1.0
    n_train: int = 6000
    n_valid: int = 1000
    n_test: int = 1000
    positive_fraction: float = 0.5
    # Mix of negative kinds: empty, A only, B only, A+B wrong syntax.
    negative_mix: typing.Tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
    spacer: int = 50
    # Instances are sampled from the PPM raised to this power (renormalised):
    # JASPAR ChIP-derived matrices are soft (10-12 bits for these two), so
    # planted instances are drawn a little sharper than the matrix to stand
    # out of a 200-bp random background. 1.0 samples the PPM as it is.
    sharpness: float = 2.0
    pseudocount: float = 0.0
    jaspar_release: str = "JASPAR2024"

    def __post_init__(self):
        self._check_types()
        if len(self.motif_ids) != 2:
            raise ArgminnError("SimulationConfig: 'motif_ids' must name exactly two JASPAR motifs (A then B)")
        if self.motif_ids[0] == self.motif_ids[1]:  # a 'wrong' spacing of -spacing would then follow the rule
            raise ArgminnError(f"SimulationConfig: 'motif_ids' names {self.motif_ids[0]} twice; the rule pairs two "
                               "different motifs")
        if len(self.negative_mix) != 4 or min(self.negative_mix) < 0 or sum(self.negative_mix) <= 0:
            raise ArgminnError("SimulationConfig: 'negative_mix' needs 4 non-negative weights "
                               "(empty, A only, B only, wrong syntax)")
        if self.orientation not in ("same", "opposite"):
            raise ArgminnError(f"SimulationConfig: 'orientation' must be 'same' or 'opposite' (B on A's strand or "
                               f"the other), got {self.orientation!r}")
        if not 0 <= self.wrong_orientation_fraction <= 1:
            raise ArgminnError("SimulationConfig: 'wrong_orientation_fraction' must be between 0 and 1")
        if not 0 < self.positive_fraction < 1:
            raise ArgminnError("SimulationConfig: 'positive_fraction' must be between 0 and 1")
        if not 0 <= self.seed < 2 ** 63:
            raise ArgminnError(f"SimulationConfig: 'seed' must be in [0, 2**63), got {self.seed}")
        if min(self.n_train, self.n_valid, self.n_test) < 1:
            raise ArgminnError("SimulationConfig: n_train, n_valid and n_test must be >= 1")
        if self.spacer < 0:
            raise ArgminnError(f"SimulationConfig: 'spacer' (random bases between windows) must be >= 0, "
                               f"got {self.spacer}")
        if self.pseudocount < 0:
            raise ArgminnError(f"SimulationConfig: 'pseudocount' must be >= 0, got {self.pseudocount}")
        if self.sharpness <= 0:
            raise ArgminnError(f"SimulationConfig: 'sharpness' (the matrix raised to this power) must be > 0, "
                               f"got {self.sharpness}")
        if self.wrong_spacing_margin < 1:
            raise ArgminnError(f"SimulationConfig: 'wrong_spacing_margin' must be >= 1 (at 0 a wrong spacing can "
                               f"be the right one), got {self.wrong_spacing_margin}")

    def check_layout(self, width_a, width_b):
        """Refuse a spacing and length the planting cannot meet, given the widths of motifs A and B.

        B must start at or after A's end, or end at or before A's start (a
        negative spacing: B first), else one overwrites part of the other; the
        pair must fit in a window; and when wrong-spacing negatives are asked
        for, some spacing at least ``wrong_spacing_margin`` from ``spacing``
        must fit too (else drawing one would never end).
        """
        (id_a, id_b), spacing, length = self.motif_ids, self.spacing, self.length
        if -width_b < spacing < width_a:
            raise ArgminnError(f"SimulationConfig: 'spacing' must be >= {width_a}, the width of motif A ({id_a}), "
                               f"or <= -{width_b} (B, {id_b}, first), so neither motif overwrites part of the "
                               f"other; got {spacing}")
        span = max(width_a, spacing + width_b) - min(0, spacing)
        if span > length:
            raise ArgminnError(f"SimulationConfig: the pair does not fit in a window: it spans {span} bp at "
                               f"'spacing' {spacing} (motif A {id_a}: {width_a} bp, B {id_b}: {width_b} bp), more "
                               f"than 'length' ({length})")
        if self.wrong_orientation_fraction < 1 and self.negative_mix[3] > 0 and not any(
                abs(offset - spacing) >= self.wrong_spacing_margin and _pair_fits(offset, width_a, width_b, length)
                for offset in range(-length // 2, length // 2)):
            raise ArgminnError(f"SimulationConfig: no wrong spacing fits in a {length}-bp window: every spacing "
                               f"that fits is within 'wrong_spacing_margin' ({self.wrong_spacing_margin}) of "
                               f"'spacing' ({spacing}); lower the margin, raise 'length' or set "
                               f"'wrong_orientation_fraction' to 1")


def jaspar_motif(motif_id, release="JASPAR2024"):
    """(name, (4, w) probability matrix) for a JASPAR ID, read offline by pyjaspar."""
    from .motifs import open_jaspar

    import warnings

    with warnings.catch_warnings():  # pyjaspar warns of an unknown ID before returning None: one line below
        warnings.simplefilter("ignore")
        motif = open_jaspar(release).fetch_motif_by_id(motif_id)
    if motif is None:
        raise ArgminnError(f"JASPAR ID {motif_id!r} is not in {release} (use an ID such as MA0035.5)")
    counts = np.array([motif.counts[b] for b in "ACGT"], dtype=np.float64)
    return motif.name, counts / counts.sum(0, keepdims=True)


def _sample_motif(ppm, rng, pseudocount, sharpness=1.0):
    probs = (ppm + pseudocount) ** sharpness
    probs = probs / probs.sum(0, keepdims=True)
    cum = probs.cumsum(0)
    draws = rng.random(ppm.shape[1])
    return (draws[None, :] > cum).sum(0).clip(0, 3)


def _rc_codes(codes):
    return (3 - codes)[::-1]


def _pair_fits(offset, wa, wb, length):
    """A at 0 and B at ``offset`` do not overlap, and the pair fits in a window of ``length``."""
    return not -wb < offset < wa and max(wa, offset + wb) - min(0, offset) <= length


def _strands_of_b(cfg):
    """(B's strand in the rule, the other one), with A on '+'."""
    return ("+", "-") if cfg.orientation == "same" else ("-", "+")


def _wrong_layout(rng, cfg, wa, wb):
    """A and B with a spacing or relative orientation that breaks the rule."""
    length = cfg.length
    rule_b, other_b = _strands_of_b(cfg)
    while True:
        if rng.random() < cfg.wrong_orientation_fraction:  # wrong relative orientation
            strand_b = other_b
            offset = cfg.spacing if rng.random() < 0.5 else int(rng.integers(-length // 2, length // 2))
        else:
            offset = int(rng.integers(-length // 2, length // 2))
            strand_b = rule_b
            if abs(offset - cfg.spacing) < cfg.wrong_spacing_margin:
                continue
        # A at a, B at a + offset: non-overlapping, and the pair fits the window.
        if not _pair_fits(offset, wa, wb, length):
            continue
        return offset, strand_b


def simulate_sequences(cfg, n, rng, ppms):
    """n windows as int codes (n, L), labels (n,), and the instances planted."""
    length = cfg.length
    (name_a, ppm_a), (name_b, ppm_b) = ppms
    wa, wb = ppm_a.shape[1], ppm_b.shape[1]
    codes = rng.integers(0, 4, size=(n, length))
    labels = (rng.random(n) < cfg.positive_fraction).astype(np.int64)
    mix = np.asarray(cfg.negative_mix, dtype=float)
    kinds = rng.choice(4, size=n, p=mix / mix.sum())
    instances = []

    def plant(i, ppm, name, start, strand):
        motif = _sample_motif(ppm, rng, cfg.pseudocount, cfg.sharpness)
        codes[i, start:start + len(motif)] = motif if strand == "+" else _rc_codes(motif)
        instances.append((i, name, start, start + len(motif), strand))

    for i in range(n):
        if labels[i] == 1 or kinds[i] == 3:
            offset, strand_b = ((cfg.spacing, _strands_of_b(cfg)[0]) if labels[i] == 1
                                else _wrong_layout(rng, cfg, wa, wb))
            lo = max(0, -offset)
            hi = length - max(wa, offset + wb)
            a = int(rng.integers(lo, hi + 1))
            layout = [(ppm_a, name_a, a, "+"), (ppm_b, name_b, a + offset, strand_b)]
            if rng.random() < 0.5:  # the whole pair on the minus strand
                layout = [(p, nm, length - s - p.shape[1], "-" if st == "+" else "+") for p, nm, s, st in layout]
            for ppm, name, start, strand in layout:
                plant(i, ppm, name, start, strand)
        elif kinds[i] in (1, 2):
            ppm, name = (ppm_a, name_a) if kinds[i] == 1 else (ppm_b, name_b)
            start = int(rng.integers(0, length - ppm.shape[1] + 1))
            plant(i, ppm, name, start, "+" if rng.random() < 0.5 else "-")
    return codes, labels, instances


def simulate(out_dir, config=None, force=False):
    """Write the default dataset to ``out_dir``; returns the summary dict."""
    cfg = config or SimulationConfig()
    rng = np.random.default_rng(cfg.seed)
    ppms = [jaspar_motif(m, cfg.jaspar_release) for m in cfg.motif_ids]
    if ppms[0][1].shape == ppms[1][1].shape and np.array_equal(ppms[0][1], ppms[1][1]):  # 'MA0047' is MA0047.4
        raise ArgminnError(f"SimulationConfig: 'motif_ids' {cfg.motif_ids[0]} and {cfg.motif_ids[1]} are one "
                           f"motif ({ppms[0][0]}) in {cfg.jaspar_release}; the rule pairs two different motifs")
    cfg.check_layout(ppms[0][1].shape[1], ppms[1][1].shape[1])  # before anything is written
    summary = {"config": cfg.to_dict(), "motifs": {cfg.motif_ids[k]: ppms[k][0] for k in range(2)},
               "splits": SPLITS, "task_names": ["label"],
               "rule": f"positive iff {ppms[0][0]} then {ppms[1][0]} starting {cfg.spacing} bp later, "
                       + ("same strand" if cfg.orientation == "same" else "on the other strand")}
    write_dataset(out_dir, lambda split, n: simulate_sequences(cfg, n, rng, ppms),
                  {"train": cfg.n_train, "valid": cfg.n_valid, "test": cfg.n_test},
                  [(cfg.motif_ids[k] + " " + ppms[k][0], ppms[k][1]) for k in range(2)],
                  summary, cfg.length, cfg.spacer, rng, force)
    return summary


OUTPUTS = ("genome.fa", "peaks.bed", "test.bed", "instances.tsv", "motifs.meme", "simulation.json")


def dataset_meta(data_dir, hint="make one with 'argminn simulate' or pass --fasta and --bed"):
    """simulation.json of a simulated dataset directory, checked; ``length`` set at its top level.

    Datasets of ``argminn simulate`` keep the window length in ``config``, the
    benchmark's (``benchmarks/datasets.py``) at the top level; both load. A
    missing file, bad JSON, or a missing split or length is an
    :class:`ArgminnError` naming the file and what is missing.
    """
    path = os.path.join(data_dir, "simulation.json")
    if not os.path.isfile(path):
        raise ArgminnError(f"{data_dir}: not a dataset directory (no simulation.json); {hint}")
    meta = read_json_object(path, "simulation.json")
    splits, config = meta.get("splits"), meta.get("config")
    length = meta.get("length", config.get("length") if isinstance(config, dict) else None)
    missing = [name for name, ok in (
        ("splits.valid", isinstance(splits, dict) and isinstance(splits.get("valid"), str)),
        ("splits.test", isinstance(splits, dict) and isinstance(splits.get("test"), str)),
        ("length (top level or in config)", type(length) is int and length > 0)) if not ok]
    if missing:
        raise ArgminnError(f"{path}: missing or invalid {', '.join(missing)}")
    return {**meta, "length": length}


def write_dataset(out_dir, sample, sizes, motifs, summary, length, spacer, rng, force=False):
    """Lay simulated windows end to end on one chromosome per split and write the dataset files.

    ``sample(split, n)`` -> (codes (n, length) ints 0-3, labels (n,), instances
    [(row, motif name, start, end, strand)]); ``sizes``: split -> n;
    ``motifs``: [(name, PPM)] for motifs.meme; ``summary``: written as
    simulation.json. Writes :data:`OUTPUTS` atomically (refusing to overwrite
    without ``force``); every other simulated dataset (e.g. the benchmark
    grammars in ``benchmarks/datasets.py``) goes through here too.
    """
    from .motifs import write_meme

    os.makedirs(out_dir, exist_ok=True)
    for name in OUTPUTS:
        check_writable(os.path.join(out_dir, name), force)
    letters = np.array(list("ACGT"))
    genome, bed_rows, inst_rows = {}, [], []
    for split, n in sizes.items():
        chrom = SPLITS[split]
        codes, labels, instances = sample(split, n)
        pieces, pos, starts = [], 0, []
        for i in range(n):
            pieces.append("".join(letters[rng.integers(0, 4, size=spacer)]))
            pos += spacer
            starts.append(pos)
            pieces.append("".join(letters[codes[i]]))
            pos += length
        pieces.append("".join(letters[rng.integers(0, 4, size=spacer)]))
        genome[chrom] = "".join(pieces)
        for i in range(n):
            bed_rows.append(f"{chrom}\t{starts[i]}\t{starts[i] + length}\t{labels[i]}")
        for i, name, s, e, strand in instances:
            inst_rows.append(f"{chrom}\t{starts[i] + s}\t{starts[i] + e}\t{name}\t{strand}\t{split}\t"
                             f"{chrom}:{starts[i] + 1}-{starts[i] + length}\t{s}\t{e}\t{labels[i]}")
    with output_set(out_dir, OUTPUTS, force) as path:  # all, or none
        write_fasta(path["genome.fa"], genome.keys(), genome.values(), force=True)
        with atomic_write(path["peaks.bed"], force=True) as handle:
            handle.write("#chrom\tstart\tend\tlabel\n")
            handle.write("\n".join(bed_rows) + "\n")
        with atomic_write(path["test.bed"], force=True) as handle:
            handle.write("#chrom\tstart\tend\tlabel\n")
            handle.write("\n".join(r for r in bed_rows if r.startswith(SPLITS["test"] + "\t")) + "\n")
        with atomic_write(path["instances.tsv"], force=True) as handle:
            handle.write("chrom\tstart\tend\tmotif\tstrand\tsplit\twindow\twindow_start\twindow_end\tlabel\n")
            handle.write("\n".join(inst_rows) + "\n")
        write_meme(path["motifs.meme"], motifs, force=True)
        with atomic_write(path["simulation.json"], force=True) as handle:
            dump_json(summary, handle, indent=2)


def planted_instances(data_dir, bed, length=None):
    """The planted instances of a simulated dataset inside the windows of ``bed``.

    Returns a DataFrame (sequence = row of ``bed``, motif, start, end in
    window coordinates, strand), the ground truth for instance calling.
    ``length``: the windows' length, when a model reads windows of another
    length than the dataset's (centred on its intervals, as the model's
    windows are): coordinates are then in those windows, and instances not
    wholly inside them are left out. None: the dataset's own windows.
    """
    import pandas as pd

    from .data import centred_windows

    path = os.path.join(data_dir, "instances.tsv")
    if not os.path.isfile(path):
        raise ArgminnError(f"{data_dir}: no instances.tsv (not a dataset written by 'argminn simulate')")
    inst = read_tsv(path, "planted-instance table", ("chrom", "start", "motif", "window_start", "window_end",
                                                       "strand"), "simulate the dataset again",
                    dtype={"chrom": str})
    # joined on the window's chromosome and start (an instance's genomic start less its start in the window),
    # not on the 'window' text: that is a region as samtools writes it (1-based, chr1:301-500), and was written
    # 0-based (chr1:300-500) before
    keys = list(zip(inst["chrom"].astype(str), inst["start"] - inst["window_start"]))
    index = {w: i for i, w in enumerate(zip(bed["chrom"].astype(str), bed["start"]))}
    rows = np.array([index.get(k, -1) for k in keys], dtype=np.int64)
    inst = inst[rows >= 0]
    rows = rows[rows >= 0]
    start, end = inst["window_start"].to_numpy(), inst["window_end"].to_numpy()
    inside = np.ones(len(inst), dtype=bool)
    if length is not None:  # from the interval's frame to the model window's
        shift = (bed["start"].to_numpy() - centred_windows(bed, length)[0])[rows]
        start, end = start + shift, end + shift
        inside = (start >= 0) & (end <= length)
    return pd.DataFrame({"sequence": rows[inside], "motif": inst["motif"].to_numpy()[inside],
                         "start": start[inside], "end": end[inside], "strand": inst["strand"].to_numpy()[inside]})
