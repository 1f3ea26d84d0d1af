"""Let kipoi 0.8.6 and kipoi-veff 0.3.1 run under numpy 2.

kipoi's HDF5 writer compares dtypes with ``np.string_`` and ``np.unicode_``,
which numpy 2 removed (they were aliases of ``np.bytes_`` and ``np.str_``);
kipoi-veff calls ``np.in1d``, removed in numpy 2.4 (``np.isin`` on the raveled
array), and ``np.int`` / ``np.str``, removed in numpy 1.24 (the builtins).
Importing this module restores these names where they are missing; it changes
nothing where numpy still has them. The Kipoi model's ``model.py`` imports it, so
``kipoi predict -o out.h5`` works without pinning numpy<2.
"""

import numpy as np

if not hasattr(np, "string_"):
    np.string_ = np.bytes_
if not hasattr(np, "unicode_"):
    np.unicode_ = np.str_
if not hasattr(np, "in1d"):  # kipoi-veff's DNA reshaper; removed in numpy 2.4
    def _in1d(ar1, ar2, assume_unique=False, invert=False, **kwargs):
        return np.isin(np.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert, **kwargs)

    np.in1d = _in1d
for _name, _value in (("int", int), ("str", str)):
    if _name not in np.__dict__:
        setattr(np, _name, _value)
