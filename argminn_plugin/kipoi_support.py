"""The pieces of the Kipoi model directory that live in the library (and are tested here).

- :class:`KipoiModel`: the module Kipoi's ``PyTorchModel`` loads: ARGMINN (or a
  baseline) built from ``config.json`` ({"architecture", "config"}), returning
  sigmoid probabilities (N, T).
- :class:`IntervalDataLoader`: FASTA + BED -> one-hot (4, L) float32 windows
  centred on each interval, N as an all-zero column, with ``ranges`` metadata.
  Intervals are read and checked by :mod:`argminn_plugin.data` (one-line errors),
  centred by tangermeme's rule (``mid = start + (end - start) // 2``; kipoiseq's
  ``Interval.resize`` puts odd-sum intervals 1 bp to the right, so it is not
  used), fetched as kipoiseq ``Interval``s with kipoiseq's pyfaidx-based
  ``FastaStringExtractor`` and encoded with kipoiseq's ``one_hot_dna``; Kipoi
  and ``argminn predict`` therefore see the same bases.
"""

import numbers
import os

import numpy as np
import torch

from . import kipoi_compat  # noqa: F401  (np.string_ for kipoi's HDF5 writer)
from .errors import ArgminnError
from .data import centred_windows, open_fasta, read_bed, usable_intervals


class KipoiModel(torch.nn.Module):
    """A trained model for Kipoi: ``forward`` returns sigmoid probabilities.

    The model is read as config.json says: in one pass, or on both strands (``"both_strands": true``, which
    ``argminn export-kipoi --both-strands`` writes): the sigmoid of the mean of the model's logits for a window and
    for its reverse complement (:class:`argminn_plugin.model.StrandAveraged`). The weights are the same either way.
    """

    def __init__(self, config_path="config.json"):
        from .train import build_model, read_model_spec

        architecture, config, both_strands = read_model_spec(config_path)
        super().__init__()
        self.model = build_model(architecture, config)
        self.both_strands = both_strands
        self.sigmoid = torch.nn.Sigmoid()
        self.eval()

    @property
    def config(self):
        return self.model.config

    def forward(self, X):
        from .model import StrandAveraged

        # the wrapper is made here rather than kept as a submodule: the weights stay the model's alone ('model.')
        return self.sigmoid(StrandAveraged(self.model)(X) if self.both_strands else self.model(X))


try:  # kipoi is an optional dependency of the library
    from kipoi.data import Dataset as _KipoiDataset
except ImportError:  # pragma: no cover - exercised only without kipoi
    _KipoiDataset = torch.utils.data.Dataset


def _flag(name, value):
    """A true/false dataloader argument: a bool, 0 or 1, or the text true / false (kipoi's ``--dataloader_args
    key=value`` passes ``false`` on as text, which bool() would take as true)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ArgminnError(f'the dataloader argument "{name}" must be true or false, got {value!r}')


class IntervalDataLoader(_KipoiDataset):
    """Kipoi dataloader: one-hot windows centred on BED intervals.

    Args:
        intervals_file: BED with chrom, start, end (further columns ignored).
        fasta_file: genome FASTA (a missing or stale .fai is rebuilt by pyfaidx).
        auto_resize_len: window length (the model's input length).
        summits: the intervals file is a narrowPeak: centre each window on its
            summit (column 10), as bpnet-lite's and tangermeme's ``summits=True``.
        skip_outside: leave out intervals whose window is not inside a
            chromosome of the FASTA (counted on stderr) instead of refusing.
    """

    def __init__(self, intervals_file, fasta_file, auto_resize_len=200, summits=False, skip_outside=False):
        from kipoiseq import Interval

        if isinstance(auto_resize_len, bool) or not isinstance(auto_resize_len, numbers.Integral) \
                or auto_resize_len < 1:
            raise ArgminnError('the dataloader argument "auto_resize_len" (the window length, the model\'s input '
                               f'length) must be a positive integer, got {auto_resize_len!r}')
        summits, skip_outside = _flag("summits", summits), _flag("skip_outside", skip_outside)
        self.bed, _ = read_bed(intervals_file, summits=summits)
        # a window's id (metadata ranges.id) is its interval's index in the file, also where others are skipped
        self.bed["interval"] = np.arange(len(self.bed))
        fasta = open_fasta(fasta_file)
        self.bed, = usable_intervals(fasta, fasta_file, [(self.bed, intervals_file)], auto_resize_len,
                                     skip_outside, skip_option='the dataloader argument "skip_outside": true')
        # opened at the first window, maybe after a change of directory: Kipoi builds a model's dataloader (and
        # its init_example, whose paths are relative to the model directory) inside that directory, then goes back
        self.fasta_file = os.path.abspath(fasta_file)
        starts, ends = centred_windows(self.bed, auto_resize_len)
        self.intervals = [Interval(c, int(s), int(e)) for c, s, e in zip(self.bed["chrom"], starts, ends)]
        self.extractor = None

    def __len__(self):
        return len(self.intervals)

    def __getitem__(self, idx):
        from kipoi.metadata import GenomicRanges
        from kipoiseq.extractors import FastaStringExtractor
        from kipoiseq.transforms.functional import one_hot_dna

        if self.extractor is None:
            self.extractor = FastaStringExtractor(self.fasta_file, force_upper=True)
        interval = self.intervals[idx]
        seq = self.extractor.extract(interval)
        onehot = one_hot_dna(seq, alphabet=["A", "C", "G", "T"], neutral_value=0.0, dtype=np.float32).T
        return {"inputs": np.ascontiguousarray(onehot),
                "metadata": {"ranges": GenomicRanges(interval.chrom, interval.start, interval.end,
                                                     str(self.bed["interval"].iat[idx]))}}
