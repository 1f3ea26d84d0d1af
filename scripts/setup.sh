#!/usr/bin/env bash
# Set up .venv with CPU torch 2.13.0 first (a looser torch spec would pull GBs
# of CUDA packages), then argminn-plugin with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -c <(echo torch==2.13.0) -e '.[test,kipoi,bench]'
# bpnet-lite's dependency `modisco` overwrites modisco-lite's package folder.
.venv/bin/python -m pip install -q --force-reinstall --no-deps modisco-lite==3.0.0
# kipoi-veff 0.3.1 depends on pyvcf, whose sdist no longer builds: install it
# without dependencies, with the readers it actually imports.
.venv/bin/python -m pip install -q --no-deps kipoi-veff==0.3.1
.venv/bin/python -m pip install -q cyvcf2 'intervaltree<3' PyVCF3 pysam
.venv/bin/python -c "import argminn_plugin, torch; print('argminn-plugin', argminn_plugin.__version__, 'torch', torch.__version__)"
