"""Kipoi dataloader: one-hot (4, L) windows centred on BED intervals of a FASTA."""
from argminn_plugin.kipoi_support import IntervalDataLoader


class ARGMINNIntervalDl(IntervalDataLoader):
    pass
