"""Let kipoi 0.8.6 write HDF5 under numpy 2.

kipoi's HDF5 writer compares dtypes with ``np.string_`` and ``np.unicode_``,
which numpy 2 removed (they were aliases of ``np.bytes_`` and ``np.str_``).
Importing this module restores the two aliases when they are missing; it
changes nothing under numpy 1. The Kipoi model's ``model.py`` imports it, so
``kipoi predict -o out.h5`` works without pinning numpy<2.
"""

import numpy as np

if not hasattr(np, "string_"):
    np.string_ = np.bytes_
if not hasattr(np, "unicode_"):
    np.unicode_ = np.str_
