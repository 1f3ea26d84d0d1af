"""Variant effects through the Kipoi path: kipoi-veff on a Kipoi model directory.

kipoi-veff 0.3.1 reads ``postprocessing: variant_effects`` from the model and
dataloader descriptions, a block kipoi 0.8.6 no longer parses; this bridge
reads it from the two YAML files and attaches it, bgzips and tabix-indexes the
VCF with pysam (kipoi-veff would call the bedtools binary otherwise), and
collects kipoi-veff's ref / alt / diff scores (probabilities, the Kipoi
model's output) without its VCF writer (incompatible with PyVCF3).

kipoi-veff centres a window so that the variant sits at index ``L // 2 - 1``
(for odd lengths too: its left offset is ``int(L / 2) - 1``); :func:`argminn_plugin.variants.score_variants` puts it at
``L // 2`` by default (tangermeme's centre), so pass ``offset=L // 2 - 1`` there
to score the very same windows.
"""

import os
import tempfile
import threading
import warnings

import numpy as np

from . import kipoi_compat  # noqa: F401
from .compare import model_yaml
from .errors import ArgminnError
from .variants import check_variants, read_variants, variants_inside


class _MktempIn:
    """The ``tempfile`` module as kipoi-veff's snv_predict sees it while the bridge scores: ``mktemp`` names its
    files in ``directory`` (kipoi-veff leaves one of them behind); everything else is the real module's."""

    def __init__(self, directory):
        self.directory = directory

    def mktemp(self, suffix="", prefix="tmp", dir=None):  # noqa: A002 (tempfile's own signature)
        return tempfile.mktemp(suffix, prefix, self.directory if dir is None else dir)

    def __getattr__(self, name):
        return getattr(tempfile, name)


# one scoring at a time holds kipoi-veff's module (threads of one process)
_VEFF_MODULE = threading.Lock()


class _NullWriter:
    def __call__(self, *args, **kwargs):
        pass

    def close(self):
        pass


def _variant_effects_block(path, key):
    import yaml

    try:
        with open(path) as handle:
            spec = yaml.safe_load(handle) or {}
    except OSError as err:
        raise ArgminnError(f"{path}: {err.strerror or err}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ArgminnError(f"{path}: not readable as YAML ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from None
    if not isinstance(spec, dict):
        raise ArgminnError(f"{path}: not a Kipoi yaml file (a {type(spec).__name__}, not a mapping)")
    block = (spec.get("postprocessing") or {}).get("variant_effects")
    if block is None or key not in block:
        raise ArgminnError(f"{path}: no 'postprocessing: variant_effects: {key}' block; re-export the model with "
                           "argminn export-kipoi")
    return block


def kipoi_veff_scores(model_dir, fasta, variants_path, batch_size=32, skip_other=False, skip_outside=False):
    """kipoi-veff ref/alt/diff of every SNV in ``variants_path`` (VCF or table) for a Kipoi model directory.

    Returns a DataFrame: chrom, pos, ref, alt, id, then ``<task>_ref``,
    ``<task>_alt``, ``<task>_diff`` (probabilities).
    """
    import kipoi
    import pysam
    from kipoi_veff import score_variants, snv_predict
    from kipoi_veff.specs import VarEffectDataLoaderArgs, VarEffectModelArgs

    model_block = _variant_effects_block(model_yaml(model_dir), "seq_input")
    dl_block = _variant_effects_block(os.path.join(model_dir, "dataloader.yaml"), "bed_input")
    variants = read_variants(variants_path, skip_other=skip_other)
    skipped = variants.attrs["skipped"]
    try:
        model = kipoi.get_model(os.path.abspath(model_dir), source="dir")
    except Exception as err:  # noqa: BLE001 (Kipoi's loader: a missing or damaged file of the directory, whatever kind)
        detail = (str(err).strip().splitlines() or ["no detail"])[0]
        raise ArgminnError(f"{model_dir}: Kipoi could not load this model directory ({type(err).__name__}: "
                           f"{detail[:300]})") from None
    # The user's file checked as the tangermeme route checks it, on kipoi-veff's windows (variant at
    # index L // 2 - 1), so errors name that file and its lines, not the temporary VCF below.
    length = getattr(getattr(model.model, "config", None), "input_length", None)
    if not isinstance(length, int):
        raise ArgminnError(f"{model_dir}: its model does not name its input length (config.input_length, as the "
                           "model of a directory written by argminn export-kipoi does); --kipoi-model scores such "
                           "directories only")
    if skip_outside:
        variants = variants_inside(variants, fasta, length, variants_path, offset=length // 2 - 1)
    check_variants(variants, fasta, length, variants_path, offset=length // 2 - 1,
                   skip_option="--skip-outside (in Python, skip_outside=True)")
    model.postprocessing = {"variant_effects": VarEffectModelArgs.from_config(model_block)}
    model.default_dataloader.postprocessing = {"variant_effects": VarEffectDataLoaderArgs.from_config(dl_block)}
    ordered = variants.sort_values(["chrom", "pos"], kind="stable").reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        vcf = os.path.join(tmp, "variants.vcf")
        with open(vcf, "w") as handle:
            handle.write("##fileformat=VCFv4.2\n")
            for chrom in ordered["chrom"].unique():
                handle.write(f"##contig=<ID={chrom}>\n")
            handle.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
            for r in ordered.itertuples():
                handle.write(f"{r.chrom}\t{r.pos}\t{r.id}\t{r.ref}\t{r.alt}\t.\t.\t.\n")
        gz = pysam.tabix_index(vcf, preset="vcf", force=True)
        # kipoi-veff names files of its own with tempfile.mktemp and leaves one behind: named in this directory,
        # it goes with it (its module's tempfile only, not the process's: other threads' files stay where they go)
        with _VEFF_MODULE:
            real, snv_predict.tempfile = snv_predict.tempfile, _MktempIn(tmp)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = score_variants(model, {"fasta_file": os.path.abspath(fasta)}, gz,
                                         output_writers=[_NullWriter()], scores=["ref", "alt", "diff"],
                                         batch_size=batch_size, return_predictions=True)
            finally:
                snv_predict.tempfile = real
    out = ordered.copy()
    for score in ("ref", "alt", "diff"):
        table = res[score]
        if len(table) != len(out):
            raise ArgminnError(f"kipoi-veff scored {len(table)} of {len(out)} variants")
        for col in table.columns:
            out[f"{col}_{score}"] = np.asarray(table[col], dtype=float)
    # back in the input's order, as the tangermeme route keeps it (the VCF above had to be sorted)
    out = out.sort_values("line", kind="stable").drop(columns=["line"]).reset_index(drop=True)
    out.attrs["skipped"] = skipped  # with skip_other: the alleles left out
    return out
