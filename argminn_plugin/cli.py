"""The ``argminn`` command line: simulate, train, predict, motifs, demo.

User errors print one line (``argminn: error: ...``) and exit with status 2.
"""

import argparse
import contextlib
import functools
import json
import os
import signal
import sys
import threading

from .config import HEAD_WEIGHTS, TUNED_EPOCHS, TUNED_PATIENCE, TUNED_TRAIN, TrainConfig, settings_from_pairs
from .errors import ArgminnError
from .runtime import steady_allocator


def _data_length(args):
    """The window length of a dataset written by 'argminn simulate' (--data), else None."""
    if not args.data:
        return None
    from .simulate import dataset_meta

    return dataset_meta(args.data)["length"]


def _sources(args, labelled):
    """Refuse mixed or incomplete data flags: --data, or --fasta with --bed, or --fasta with --peaks
    (and, where labels are needed, --negatives)."""
    peaks, negatives, summits = (getattr(args, k, None) for k in ("peaks", "negatives", "summits"))
    if args.data:
        given = [flag for flag, v in (("--fasta", args.fasta), ("--bed", args.bed), ("--peaks", peaks),
                                      ("--negatives", negatives), ("--summits", summits),
                                      ("--task-name", getattr(args, "task_name", None)),
                                      ("--valid-chroms", getattr(args, "valid_chroms", None)),
                                      ("--test-chroms", getattr(args, "test_chroms", None))) if v]
        if given:
            raise ArgminnError(f"--data gives the genome and intervals; drop {', '.join(given)} or drop --data")
        return
    if args.bed and (peaks or negatives):
        raise ArgminnError("give --bed (labelled intervals) or --peaks/--negatives, not both")
    if negatives and not peaks:
        raise ArgminnError("--negatives needs --peaks (the positives)")
    if summits and not (peaks or (args.bed and not labelled)):
        raise ArgminnError("--summits reads the summits of --peaks (a narrowPeak file); there is no --peaks")
    if getattr(args, "task_name", None) and not peaks:
        raise ArgminnError("--task-name names the task of --peaks; a labelled BED names its tasks in its header")
    if peaks and labelled and not negatives:
        raise ArgminnError("--peaks needs --negatives (BED of regions labelled 0, e.g. from 'bpnet negatives')")
    if not args.fasta or not (args.bed or peaks):
        raise ArgminnError("give --data DIR, or --fasta with --bed, or --fasta with --peaks and --negatives")


DEFAULT_VALID_CHROMS, DEFAULT_TEST_CHROMS = ["chr2"], ["chr3"]  # --fasta without --valid-chroms, --test-chroms


def _labelled_splits(args, length, needed=None):
    """({'train', 'valid', 'test'}: (X, y, bed), task names) from --data, --fasta --bed (0/1 label
    columns) or --fasta --peaks --negatives (one task: peak or not); ``needed``: the splits the command reads
    (data.load_splits; None: all three)."""
    from .data import SPLITS, load_peaks, load_splits

    needed = SPLITS if needed is None else needed
    _sources(args, labelled=True)
    skip = bool(getattr(args, "skip_outside", False))
    if args.data:
        from .simulate import dataset_meta

        splits = dataset_meta(args.data)["splits"]
        return load_splits(os.path.join(args.data, "genome.fa"), os.path.join(args.data, "peaks.bed"), length,
                           [splits["valid"]], [splits["test"]], skip=skip)
    valid, test = args.valid_chroms or DEFAULT_VALID_CHROMS, args.test_chroms or DEFAULT_TEST_CHROMS
    if args.peaks:
        return load_peaks(args.fasta, args.peaks, args.negatives, length, valid, test,
                          summits=args.summits, skip=skip, task_name=getattr(args, "task_name", None), needed=needed)
    return load_splits(args.fasta, args.bed, length, valid, test, skip=skip, needed=needed)


def _intervals(args, length):
    """(X, bed) of every interval of --data, --fasta --bed or --fasta --peaks (labels not read)."""
    from .data import load_intervals

    _sources(args, labelled=False)
    skip = bool(getattr(args, "skip_outside", False))
    if args.data:
        X, _, bed, _ = load_intervals(os.path.join(args.data, "genome.fa"), os.path.join(args.data, "peaks.bed"),
                                      length, skip=skip)
    else:
        X, _, bed, _ = load_intervals(args.fasta, args.peaks or args.bed, length, summits=bool(args.summits),
                                      skip=skip)
    return X, bed


def _load_config(cls, path, pairs, where, **defaults):
    """``cls`` from ``defaults``, then the keys of the JSON file ``path``, then the ``KEY=VALUE`` flags
    (``where``), checked once as a whole: a setting valid only with a flag's value is accepted, and an error
    names the file, the flag, or both where both are given."""
    file_keys = cls.json_keys(path) if path else {}
    flags = settings_from_pairs(pairs, where)
    named = f"{path} with {where}" if path and flags else (path or where)
    return cls.from_dict({**defaults, **file_keys, **flags}, where=named)


# The max_epochs a resumed run's settings are first checked with, before the run's own is read (above any
# warm-up a run can have been started with).
UNREAD_MAX_EPOCHS = 10 ** 9


def _given_keys(cls, path, pairs, where):
    """The keys of ``cls`` the JSON file ``path`` and the ``KEY=VALUE`` flags give (as :func:`_load_config` reads
    them)."""
    return set(cls.json_keys(path) if path else {}) | set(settings_from_pairs(pairs, where))


def _run_max_epochs(out):
    """The max_epochs of the run under way in ``out`` (its last.pt; a run killed during its warm-up candidates:
    their record of it), or None (no run there, or a file train() refuses with its own error)."""
    from .fileio import read_json_object, safe_load_torch
    from .train import MAIN_RUN_RECORD

    def usable(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    path, record = os.path.join(out, "last.pt"), os.path.join(out, MAIN_RUN_RECORD)
    if os.path.isfile(path):
        try:
            saved = safe_load_torch(path).get("train_config")
        except (ArgminnError, AttributeError):
            return None
        value = saved.get("max_epochs") if isinstance(saved, dict) else None
        return value if usable(value) else None
    if not os.path.isfile(record):
        return None
    advice = "give max_epochs again (--train-set max_epochs=N) or start again with --force"
    try:  # train() does not read the record: a damaged one is named here
        value = read_json_object(record, "warm-up record").get("max_epochs")
    except ArgminnError as exc:
        raise ArgminnError(f"{exc}; {advice}") from None
    if not usable(value):
        raise ArgminnError(f"{record}: not a readable warm-up record (its 'max_epochs' should be a whole number "
                           f">= 1); {advice}")
    return value


def _check_tasks(mc, names):
    """The data names the tasks: an n_tasks or task_names that --model-set / --model-config gave ``mc`` must
    agree. A value equal to the default says nothing (a whole config dumped to a file has it), so ``mc``'s own
    values tell what was given."""
    default = type(mc)()
    allowed = {"n_tasks": (len(names), default.n_tasks), "task_names": (list(names), list(default.task_names))}
    given = {"n_tasks": mc.n_tasks, "task_names": list(mc.task_names)}
    asked = [f"{key}={value!r}" for key, value in given.items() if value not in allowed[key]]
    if asked:
        raise ArgminnError(f"the data has {len(names)} task(s), {', '.join(names)}, which name the model's; "
                           f"drop {' and '.join(asked)} from --model-set / --model-config")


def cmd_simulate(args):
    from .simulate import SimulationConfig, simulate

    cfg = _load_config(SimulationConfig, args.config, args.set, "--set")
    summary = simulate(args.out, cfg, force=args.force)
    print(f"wrote {args.out}: {summary['rule']}")


def cmd_train(args):
    from .config import TrainConfig
    from .fileio import atomic_write, dump_json, json_ready, model_fingerprint
    from .model import StrandAveraged
    from .train import (ARCHITECTURES, _from_rank0, classification_metrics, distributed_context, evaluate, run_held,
                        train)

    _sources(args, labelled=True)  # a flag mix-up is named before any file is read
    # max_epochs is the one setting a resumed run may change: one not given again is the run's own (read below,
    # from the run), not the default; until then the settings are checked with one no relation to it can refuse
    own_max_epochs = args.resume and "max_epochs" not in _given_keys(TrainConfig, args.train_config, args.train_set,
                                                                     "--train-set")
    tc = _load_config(TrainConfig, args.train_config, args.train_set, "--train-set",  # and a bad setting
                      **({"max_epochs": UNREAD_MAX_EPOCHS} if own_max_epochs else {}))
    length = _data_length(args)
    defaults = {"input_length": length} if length else {}
    config_cls = ARCHITECTURES[getattr(args, "architecture", "argminn")][0]
    mc = _load_config(config_cls, args.model_config, args.model_set, "--model-set", **defaults)
    # Under torchrun (WORLD_SIZE > 1) every process loads the data and trains
    # its share of each batch; rank 0 alone writes the run directory and prints.
    import torch.distributed as dist

    with contextlib.ExitStack() as run:
        with distributed_context() as info:
            if info.rank > 0:
                dist.barrier()  # let rank 0 open the FASTA first: pyfaidx may have to build its .fai index
            try:
                splits, names = _labelled_splits(args, mc.input_length)
            finally:
                if info.world > 1 and info.rank == 0:
                    dist.barrier()
            _check_tasks(mc, names)
            mc = mc.replace(n_tasks=len(names), task_names=names)
            if own_max_epochs:  # read on rank 0 (the run directory is rank 0's), the same on every rank; no run
                # there yet: the default, as a new run takes (checked with the rest now)
                saved = _from_rank0(lambda: _run_max_epochs(args.out), info)
                tc = tc.replace(max_epochs=TrainConfig().max_epochs if saved is None else saved)
            # held over the training and its scores: another training into it meanwhile would leave these scores
            # beside its model.pt
            run.enter_context(run_held(args.out, info))
            model, history = train(mc, tc, splits["train"][:2], splits["valid"][:2], args.out, resume=args.resume,
                                   force=args.force, verbose=not args.quiet)
        if info.rank > 0:
            return model, splits
        # The epoch model.pt holds: the last one marked best (only epochs with every regularizer at full
        # weight compete, see train.train), not simply the lowest validation loss. None for a run resumed
        # from an older version's checkpoint, whose history carries no marks.
        best = [r["epoch"] for r in history if r.get("best")]
        # the model the scores are of: export-kipoi publishes them with it and refuses another model's
        metrics = {"best_epoch": best[-1] if best else None, "epochs": len(history),
                   "model_fingerprint": model_fingerprint(model)}
        for split in ("valid", "test"):
            X, y, _ = splits[split]
            if len(X):
                _, probs = evaluate(model, X, y)
                metrics[split] = dict(zip(names, classification_metrics(y, probs)))
                # and read on both strands (predict --both-strands), which the benchmark found closes some gaps
                _, probs = evaluate(StrandAveraged(model), X, y)
                metrics[f"{split}_both_strands"] = dict(zip(names, classification_metrics(y, probs)))
        with atomic_write(os.path.join(args.out, "metrics.json"), force=True) as handle:
            dump_json(metrics, handle, indent=2)
    print(json.dumps(json_ready({k: metrics[k] for k in metrics if k in ("valid", "test")})))
    return model, splits


def _argminn_model(path, command):
    """The model in ``path``, which must be an ARGMINN model: ``command`` reads its attention."""
    from .train import load_model

    model = load_model(path)
    if model.architecture != "argminn":
        raise ArgminnError(f"{path}: holds a {model.architecture!r} model; '{command}' traces ARGMINN's attention "
                           "and needs an ARGMINN model")
    return model


def _device(text):
    """argparse type: a torch device this machine has ('cpu', 'cuda', 'cuda:1', 'mps'), checked before any work."""
    from .data import check_device

    try:
        return check_device(text, cpu_hint="--device cpu")
    except ArgminnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


BOTH_STRANDS_HELP = ("read every window on both strands: the mean of the model's logits for it and for its reverse "
                     "complement (the same model on twice the rows: up to about twice the time, and twice the "
                     "memory per batch)")
DEVICE_HELP = "where the model runs: cpu (default), cuda, cuda:N or mps; refused if this machine lacks it"
HEAD_WEIGHTS_HELP = ("how the attention heads are weighed: 'motifs' (default) as measured where --motifs were read "
                     "(its report.json), so each sequence's calls do not depend on the others called; 'called' "
                     "over the sequences called here (also where --motifs recorded no weights)")


def cmd_predict(args):
    from .fileio import check_writable
    from .predict import predict_intervals, write_predictions
    from .train import load_model

    check_writable(args.output, args.force)  # before the work, not after it
    model = _both_strands(load_model(args.model), args.both_strands, args.model)
    bed, logits = predict_intervals(model, args.fasta, args.bed, batch_size=args.batch_size, device=args.device,
                                    summits=args.summits, skip=args.skip_outside)
    write_predictions(args.output, bed, logits, model.config.names, force=args.force)
    print(f"wrote {len(bed)} predictions to {args.output}")


def _both_strands(model, both, path):
    """``model`` read on both strands (``--both-strands``, or ``path`` a Kipoi model directory exported to be read
    so, as Kipoi reads it: the mean of a window's and its reverse complement's logits, model.StrandAveraged), or
    as it is."""
    from .model import StrandAveraged
    from .train import reads_both_strands

    if not both and reads_both_strands(path):
        print(f"note: {path} is read on both strands, as its config.json says (export-kipoi --both-strands)",
              file=sys.stderr)
        both = True
    return StrandAveraged(model) if both else model


def cmd_variants(args):
    import pandas as pd

    from .fileio import atomic_write, check_writable

    check_writable(args.output, args.force)
    if args.kipoi_model:
        from .kipoi_veff_bridge import kipoi_veff_scores

        ignored = [flag for flag, value in (("--model", args.model), ("--motifs", args.motifs),
                                            ("--offset", args.offset), ("--head-weights", args.head_weights))
                   if value is not None]
        if ignored:
            raise ArgminnError(f"{', '.join(ignored)}: not used with --kipoi-model (kipoi-veff's windows put the "
                               "variant at L // 2 - 1); use --model for the tangermeme route")
        if args.device != "cpu":
            raise ArgminnError(f"--device {args.device}: not used with --kipoi-model (the Kipoi model directory's "
                               "model runs on the CPU); use --model for the tangermeme route")
        if args.both_strands:
            raise ArgminnError("--both-strands: not used with --kipoi-model (kipoi-veff runs the Kipoi model "
                               "directory's model as it is: one strand, or both if it was exported with "
                               "export-kipoi --both-strands); use --model for the tangermeme route")
        table = kipoi_veff_scores(args.kipoi_model, args.fasta, args.variants, batch_size=args.batch_size,
                                  skip_other=args.skip_other, skip_outside=args.skip_outside)
        skipped = table.attrs.get("skipped", 0)
    else:
        from .train import load_model
        from .variants import read_variants, score_variants

        if not args.model:
            raise ArgminnError("give --model (tangermeme route) or --kipoi-model (kipoi-veff route)")
        if args.head_weights and not args.motifs:
            raise ArgminnError("--head-weights weighs the heads that call the motif instance each variant falls "
                               "in: give it with --motifs")
        model = _argminn_model(args.model, "argminn variants --motifs") if args.motifs else load_model(args.model)
        if args.motifs:  # another model's motifs, or unreadable head weights: refused before the scoring
            from .interpret import check_some_active, read_annotation, resolve_head_weights

            check_some_active(args.motifs, read_annotation(args.motifs, model=model)[1])
            weights, _ = resolve_head_weights(args.head_weights or "motifs", args.motifs, model, "variants")
            if weights is None and args.head_weights != "called":  # said, as instances says it in its summary
                print(f"note: {args.motifs}/report.json holds no head weights (written before they were saved, "
                      "or motifs read without sequences): the heads are weighed over the variants scored here, "
                      "so a variant's hit can depend on the others; run 'argminn motifs' again to save them",
                      file=sys.stderr)
        variants = read_variants(args.variants, skip_other=args.skip_other)
        skipped = variants.attrs["skipped"]
        if args.skip_outside:
            from .variants import variants_inside

            variants = variants_inside(variants, args.fasta, model.config.input_length, args.variants, args.offset)
        table = score_variants(_both_strands(model, args.both_strands, args.model), variants, args.fasta,
                               batch_size=args.batch_size, device=args.device, path=args.variants, offset=args.offset)
        if args.motifs:
            from .interpret import variant_instances

            hits = variant_instances(model, variants, args.fasta, args.motifs, offset=args.offset,
                                     batch_size=args.batch_size, device=args.device,
                                     head_weights=args.head_weights or "motifs")
            table = pd.concat([table.reset_index(drop=True), hits], axis=1)
    with atomic_write(args.output, force=args.force) as handle:
        table.to_csv(handle, sep="\t", index=False, float_format="%.6g")
    print(f"scored {len(table)} variants; wrote {args.output}"
          + (f" (left out {skipped} allele(s) that are not SNVs: indels, symbolic or missing)" if skipped else ""))


def cmd_instances(args):
    from .data import rows_with_label
    from .interpret import instance_report
    from .simulate import planted_instances

    if not args.data and (args.split or args.positives):  # with --fasta there are no splits nor labels
        raise ArgminnError("--split and --positives choose among --data's sequences; with --fasta every interval of "
                           "--bed/--peaks is called (give the ones wanted)")
    if args.task is not None and not args.positives:
        raise ArgminnError("--task chooses whose positives --positives calls: give it with --positives")
    model = _argminn_model(args.model, "argminn instances")
    truth = None
    if args.data:
        splits, names = _labelled_splits(args, model.config.input_length)
        split = args.split or "test"
        if args.positives:
            column = _label_column(model, _task(model, args.task), names, args.data)
            X, y, bed = rows_with_label(*splits[split], task=column)
            if not len(X):
                raise ArgminnError(f"{args.data}: the {split} split has no positive of task {names[column]!r} "
                                   f"to call (--positives); give another --split")
        else:
            X, y, bed = splits[split]
        truth = planted_instances(args.data, bed, model.config.input_length)
        if not len(truth):
            raise ArgminnError(f"{args.data}: no planted motif instance inside the model's "
                               f"{model.config.input_length}-bp windows of the {len(X)} "
                               f"{'positive ' if args.positives else ''}sequence(s) of the {split} split, so no "
                               f"coverage to measure; give another --split")
    else:
        X, bed = _intervals(args, model.config.input_length)
    summary = instance_report(model, X, bed, args.motifs, args.out, truth=truth, force=args.force,
                              device=args.device, head_weights=args.head_weights)
    print(json.dumps(summary, indent=1))


def _task(model, text):
    """--task (a task name of the model, or its index; a name first) as design.task_index reads it: the output
    column."""
    from .design import task_index

    if text is not None and text not in model.config.names and text.isdecimal():
        text = int(text)
    return task_index(model, text)


def _label_column(model, task, names, where):
    """The data's label column (of ``names``) for the model's output ``task``: the one of the same name; where
    the data names none of the model's tasks (a BED without a header, --peaks named after its file), its only
    column, or the same position where the two have as many tasks. Else a one-line refusal."""
    name = model.config.names[task]
    if name in names:
        return names.index(name)
    if not set(names) & set(model.config.names):
        if len(names) == 1:
            return 0
        if len(names) == model.config.n_tasks:
            return task
    raise ArgminnError(f"{where}: its task(s) {', '.join(map(repr, names))} hold no {name!r}, the model's task "
                       f"{task} (--task; the model's: {', '.join(map(repr, model.config.names))}); give data "
                       "with a label column of that name")


def cmd_design(args):
    from .data import rows_with_label
    from .design import design_report, read_syntax
    from .train import reads_both_strands

    model = _argminn_model(args.model, "argminn design")
    if reads_both_strands(args.model):  # not silently another reading than predict's on the same directory
        print(f"note: {args.model} is read on both strands by Kipoi, predict and variants (its config.json); "
              "design reads its model in one pass, as the attention it follows", file=sys.stderr)
    syntax = read_syntax(args.instances)
    splits, names = _labelled_splits(args, model.config.input_length, needed=(args.split,))  # the one it shuffles
    task = _task(model, args.task)
    where = args.data or args.bed or f"{args.peaks} + {args.negatives}"
    column = _label_column(model, task, names, where)
    negatives, positives = (rows_with_label(*splits[args.split], label=k, task=column)[0] for k in (0, 1))
    of_task = f" of task {model.config.names[task]!r}" if model.config.n_tasks > 1 else ""
    if not len(negatives):
        raise ArgminnError(f"{where}: no negatives (label 0{of_task}) in the {args.split} split, the backgrounds of "
                           f"the design; choose another --split{' or --task' if of_task else ''}")
    if not len(positives):
        print(f"design: no positives (label 1{of_task}) in the {args.split} split: no knock-outs of called "
              "instances in effects.tsv", file=sys.stderr)
        positives = None
    table = design_report(model, negatives, args.motifs, syntax, args.out,
                          n_backgrounds=args.n_backgrounds, n_greedy=args.n_greedy, force=args.force,
                          positives=positives, step=args.start_step, head_weights=args.head_weights, task=task)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def cmd_motifs(args):
    from .report import motif_report
    from .train import load_model

    reads = any(getattr(args, k, None) for k in ("data", "fasta", "bed", "peaks", "summits", "skip_outside"))
    if reads:
        _sources(args, labelled=False)  # a flag mix-up is named before any file is read
    model = load_model(args.model)
    X = _intervals(args, model.config.input_length)[0] if reads else None
    table = motif_report(model, X, args.out, force=args.force, planted=args.planted, method=args.method)
    print(table.to_string(index=False))


def cmd_export_kipoi(args):
    from .kipoi_export import export_kipoi

    export_kipoi(args.model, args.out, args.data, n_examples=args.n_examples, force=args.force, fasta=args.fasta,
                 bed=args.bed, trained_on=args.trained_on, summits=args.summits, skip=args.skip_outside,
                 both_strands=args.both_strands)
    print(f"wrote the Kipoi model directory {args.out}; check it with: kipoi test {args.out} --source dir")


def cmd_compare_kipoi(args):
    from .compare import compare_models

    table = compare_models(args.models, args.fasta, args.bed, output=args.output, force=args.force)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


# The main job's training settings on top of the TrainConfig (design) defaults:
# the tuned setting of the benchmarks (config.TUNED_TRAIN). Measured on the
# default data (each planted motif must be found by one filter): with the
# design's raw overlap term, at the published 1e-3 FOXA2 was learned by two
# filters (one per orientation); 5e-2 (patience 8) once gave one FOXA2 filter,
# but with the current code two again (once per orientation); at 1e-1 training
# stalled. The tuned setting: HNF4A and FOXA2 once each (README).
DEMO_TRAIN_SET = [f"{key}={json.dumps(value)}" for key, value in TUNED_TRAIN.items()] + [
    f"max_epochs={TUNED_EPOCHS}", f"patience={TUNED_PATIENCE}"]


def cmd_demo(args):
    """simulate -> train -> motifs -> instances -> design on the embedded default data, with the checks."""
    from .config import ModelConfig
    from .data import rows_with_label
    from .design import design_report, read_syntax
    from .interpret import instance_report
    from .report import motif_report
    from .simulate import planted_instances

    data_dir, run_dir = os.path.join(args.out, "data"), os.path.join(args.out, "run")
    motif_dir, instance_dir = os.path.join(args.out, "motifs"), os.path.join(args.out, "instances")
    from .simulate import SimulationConfig

    # the demo's setting, each key the user gives replaced (the last given wins); bad settings are refused
    # before simulating
    train_set = DEMO_TRAIN_SET + (args.train_set or [])
    _load_config(TrainConfig, None, train_set, "--train-set")
    wanted = _load_config(SimulationConfig, None, args.sim_set, "--sim-set").to_dict()
    _load_config(ModelConfig, None, args.model_set, "--model-set", input_length=wanted["length"])
    if not (args.resume or args.force) and any(os.path.exists(d) for d in (data_dir, run_dir)):
        raise ArgminnError(f"{args.out}: holds an earlier demo (output exists); pass --resume to continue it (a "
                           "killed run picks up from its last epoch; motifs, instances and design are written "
                           "again) or --force to start again")
    if args.resume and os.path.isfile(os.path.join(data_dir, "simulation.json")):
        # simulation.json is written last: the data is complete; reuse it if it is what these settings make
        from .simulate import dataset_meta

        saved = dataset_meta(data_dir).get("config")
        try:  # a key added since the data was written takes its default, which made the same data
            saved = SimulationConfig.from_dict(saved).to_dict() if isinstance(saved, dict) else saved
        except ArgminnError:
            pass  # not this code's settings: unequal below
        if saved != wanted:
            raise ArgminnError(f"{data_dir}: simulated with other --sim-set values than this run's; resume with "
                               "the same values or pass --force to start again")
    else:  # on --resume, data a killed run left incomplete (no simulation.json) is written again
        cmd_simulate(argparse.Namespace(out=data_dir, config=None, set=args.sim_set,
                                        force=args.force or args.resume))
    ns = argparse.Namespace(data=data_dir, fasta=None, bed=None, peaks=None, negatives=None, summits=False,
                            valid_chroms=None, test_chroms=None,
                            model_config=None, model_set=args.model_set, train_config=None,
                            train_set=train_set, out=run_dir, resume=args.resume,
                            force=args.force, quiet=args.quiet)
    model, splits = cmd_train(ns)
    table = motif_report(model, splits["train"][0], motif_dir, force=True,
                         planted=os.path.join(data_dir, "simulation.json"))
    print(table.to_string(index=False))
    positives, _, bed = rows_with_label(*splits["test"])
    summary = instance_report(model, positives, bed, motif_dir, instance_dir,
                              truth=planted_instances(data_dir, bed, model.config.input_length), force=True)
    print("instances on the held-out positives:", json.dumps(summary))
    table = design_report(model, rows_with_label(*splits["test"], label=0)[0], motif_dir, read_syntax(instance_dir),
                          os.path.join(args.out, "design"), force=True, positives=positives)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _int_at_least(text, lowest):
    """argparse type: an integer >= ``lowest`` (argparse prints the one-line usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"must be >= {lowest}, got {value}")
    return value


def _positive_int(text):
    return _int_at_least(text, 1)


def _non_negative_int(text):
    return _int_at_least(text, 0)


QUIET_HELP = "no progress bars (there are none when the output is not a terminal) and fewer messages"
SKIP_OUTSIDE_HELP = ("leave out (counted, on stderr) intervals whose window is not inside a chromosome of the "
                     "FASTA, as tangermeme's and bpnet-lite's loaders do, instead of refusing the file")


MODEL_HELP = "model file (model.pt), or a Kipoi model directory export-kipoi wrote"


def build_parser():
    parser = argparse.ArgumentParser(prog="argminn", description="ARGMINN: a mechanistically interpretable "
                                     "neural network for regulatory genomics")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write the default simulated dataset (JASPAR motifs + syntax rule)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--config", help="JSON file of SimulationConfig keys")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one SimulationConfig key")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_simulate)

    def data_args(p, required_labels=True):
        p.add_argument("--data", help="dataset directory written by 'argminn simulate'")
        p.add_argument("--fasta", help="genome FASTA (indexed with pyfaidx)")
        p.add_argument("--bed", help="BED of intervals" + (" with 0/1 label columns" if required_labels else "")
                       + "; plain or gzipped")
        p.add_argument("--peaks", help="instead of --bed: BED or narrowPeak of peaks (bpnet-lite's 'peaks')"
                       + (", labelled 1" if required_labels else ""))
        if required_labels:
            p.add_argument("--negatives", help="with --peaks: BED of regions labelled 0 (bpnet-lite's 'negatives', "
                                               "e.g. from 'bpnet negatives')")
        p.add_argument("--summits", action="store_true",
                       help="with --peaks" + ("" if required_labels else " (or --bed)") + ": centre the windows on "
                            "the narrowPeak summits (column 10), as bpnet-lite's summits=True")
        p.add_argument("--skip-outside", action="store_true", help=SKIP_OUTSIDE_HELP)
        if required_labels:  # where the splits are read (train, design); the others take every interval
            p.add_argument("--valid-chroms", nargs="+",
                           help="validation chromosomes, with --fasta (default: chr2, as 'argminn simulate' "
                                "lays out its genome; --data reads them from the dataset)")
            p.add_argument("--test-chroms", nargs="+", help="test chromosomes, with --fasta (default: chr3; the "
                                                            "rest train)")

    p = sub.add_parser("train", help="train an ARGMINN model")
    data_args(p)
    p.add_argument("--task-name", help="with --peaks: the task's name (default: the peaks file's name without its "
                                       "extensions)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, model.pt, metrics.json)")
    p.add_argument("--architecture", choices=["argminn", "cnn", "explainn"], default="argminn",
                   help="ARGMINN, or a baseline for comparison: the standard CNN (CNNConfig keys) or ExplaiNN (ExplaiNNConfig keys)")
    p.add_argument("--model-config", help="JSON file of ModelConfig (or CNNConfig) keys")
    p.add_argument("--model-set", action="append", metavar="KEY=VALUE", help="override one ModelConfig key")
    p.add_argument("--train-config", help="JSON file of TrainConfig keys")
    p.add_argument("--train-set", action="append", metavar="KEY=VALUE", help="override one TrainConfig key")
    either = p.add_mutually_exclusive_group()
    either.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    either.add_argument("--force", action="store_true", help="start again even if --out holds a run")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predict intervals of a FASTA")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--fasta", required=True, help="genome FASTA")
    p.add_argument("--bed", required=True, help="BED of intervals (windows are centred on them); plain or gzipped")
    p.add_argument("--summits", action="store_true", help="--bed is a narrowPeak: centre the windows on its "
                                                           "summits (column 10); the output keeps its coordinates")
    p.add_argument("--skip-outside", action="store_true", help=SKIP_OUTSIDE_HELP + " (no row for them)")
    p.add_argument("-o", "--output", required=True, help="output TSV")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--both-strands", action="store_true", help=BOTH_STRANDS_HELP)
    p.add_argument("--device", type=_device, default="cpu", help=DEVICE_HELP)
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("instances", help="call motif instances by tracing attention (one forward pass); "
                                         "syntax read-out; with --data, top-k coverage vs FIMO")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--motifs", required=True, help="output directory of 'argminn motifs' (motifs.tsv, motifs.meme)")
    data_args(p, required_labels=False)
    p.add_argument("--split", choices=["train", "valid", "test"], help="with --data: which split (default: test; "
                                                                        "with --fasta every interval is called)")
    p.add_argument("--positives", action="store_true", help="with --data: only the positive sequences")
    p.add_argument("--task", help="with --positives: the task whose positives (a task name of the model, or its "
                                  "index where no task has that name; default the first)")
    p.add_argument("--head-weights", choices=HEAD_WEIGHTS, default="motifs", help=HEAD_WEIGHTS_HELP)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--device", type=_device, default="cpu", help=DEVICE_HELP)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_instances)

    p = sub.add_parser("design", help="insert the discovered motifs into shuffled backgrounds by the learned "
                                      "syntax; score against wrong-syntax controls and greedy design; "
                                      "marginalization, cooperativity and ablation effects")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--motifs", required=True, help="output directory of 'argminn motifs'")
    p.add_argument("--instances", required=True, help="output directory of 'argminn instances' (syntax.tsv)")
    data_args(p)
    p.add_argument("--split", choices=["train", "valid", "test"], default="test",
                   help="negatives of this split are shuffled into backgrounds")
    p.add_argument("--task", help="the task whose probability is designed for and scored, and whose negatives "
                                  "and positives are read (a task name of the model, or its index where no task "
                                  "has that name; default the first)")
    p.add_argument("--n-backgrounds", type=_positive_int, default=100)
    p.add_argument("--n-greedy", type=_non_negative_int, default=4,
                   help="backgrounds designed by tangermeme greedy substitution (0: none)")
    p.add_argument("--start-step", type=_positive_int, default=5,
                   help="bp between the starts at which each design and control is placed (default 5)")
    p.add_argument("--head-weights", choices=HEAD_WEIGHTS, default="motifs",
                   help=HEAD_WEIGHTS_HELP + " (the calls whose knock-outs are scored; give what 'argminn instances' "
                                            "was given)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_design)

    p = sub.add_parser("variants", help="score SNVs (VCF or chrom/pos/ref/alt table) with tangermeme's "
                                        "substitution effect")
    p.add_argument("--model", help=MODEL_HELP + ": tangermeme substitution effects on logits")
    p.add_argument("--kipoi-model", help="Kipoi model directory: kipoi-veff ref/alt/diff on probabilities instead")
    p.add_argument("--offset", type=int, help="the variant's index in the window (default L // 2; kipoi-veff "
                                              "uses L // 2 - 1; with --model only)")
    p.add_argument("--motifs", help="output directory of 'argminn motifs': also report the called motif instance "
                                    "each variant falls in")
    p.add_argument("--head-weights", choices=HEAD_WEIGHTS, default=None,
                   help=HEAD_WEIGHTS_HELP.replace("'motifs' (default)", "'motifs' (default with --motifs)"))
    p.add_argument("--fasta", required=True, help="genome FASTA")
    p.add_argument("--variants", required=True, help="VCF (.vcf or .vcf.gz) or TSV with chrom, pos, ref, alt; "
                                                      "a multi-allelic record gives one SNV per allele")
    p.add_argument("--skip-outside", action="store_true",
                   help="leave out (counted, on stderr) variants whose window is not inside a chromosome of the FASTA "
                        "(near a chromosome end, or on a contig the FASTA lacks) instead of refusing the file")
    p.add_argument("--skip-other", action="store_true",
                   help="leave out alleles that are not SNVs (indels, symbolic or missing) instead of refusing "
                        "the file")
    p.add_argument("-o", "--output", required=True, help="output TSV (ref, alt and alt - ref logits per task)")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--both-strands", action="store_true",
                   help=BOTH_STRANDS_HELP.replace("window", "window (ref and alt)") + "; with --model only")
    p.add_argument("--device", type=_device, default="cpu", help=DEVICE_HELP + " (with --model only)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_variants)

    p = sub.add_parser("motifs", help="read motifs from the filters: MEME, logos, TOMTOM vs JASPAR")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    data_args(p, required_labels=False)
    p.add_argument("--planted", help="simulation.json: also check each planted motif is found by one filter")
    p.add_argument("--method", choices=["auto", "weights", "seqlets"], default="auto",
                   help="PPM from the filter weights, or from the windows where each filter fires "
                        "(auto: seqlets when sequences are given); which filters are active (used by the "
                        "model) is measured on the sequences either way: without any, every filter that can "
                        "fire counts as active")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_motifs)

    p = sub.add_parser("export-kipoi", help="write a Kipoi model directory (weights, model.yaml, examples, "
                                            "test.expect) for a trained model")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--data", help="the dataset directory of 'argminn simulate' (example files come from its test "
                                  "split)")
    p.add_argument("--fasta", help="instead of --data: a genome FASTA ...")
    p.add_argument("--bed", help="... and a BED whose first intervals become the example files (e.g. held-out "
                                 "peaks); each window is cut out, the genome is not copied")
    p.add_argument("--trained-on", help="what the model was trained on, for model.yaml's trained_on")
    p.add_argument("--summits", action="store_true", help="with --bed a narrowPeak: the example windows on its "
                                                           "summits")
    p.add_argument("--skip-outside", action="store_true", help=SKIP_OUTSIDE_HELP)
    p.add_argument("--out", required=True, help="Kipoi model directory to write (e.g. kipoi_model)")
    p.add_argument("--n-examples", type=_positive_int, default=20, help="intervals in the example BED")
    p.add_argument("--both-strands", action=argparse.BooleanOptionalAction, default=None,
                   help="Kipoi reads the model on both strands: each window's probability is the sigmoid of the "
                        "mean of the model's logits for it and for its reverse complement (twice the rows per "
                        "batch); the weights are the same. --no-both-strands: in one pass. Neither: as the "
                        "model read from a Kipoi directory was exported (a run's model.pt: one pass)")
    p.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    p.set_defaults(func=cmd_export_kipoi)

    p = sub.add_parser("compare-kipoi", help="run kipoi predict with several model directories on the same "
                                             "labelled intervals and print auROC/auPRC side by side")
    p.add_argument("--models", nargs="+", required=True, help="Kipoi model directories")
    p.add_argument("--fasta", required=True, help="genome FASTA")
    p.add_argument("--bed", required=True, help="labelled BED (chrom, start, end, 0/1 label per task)")
    p.add_argument("-o", "--output", help="also write the table as TSV")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_compare_kipoi)

    p = sub.add_parser("demo", help="simulate -> train -> motifs -> instances -> design on the default "
                                    "simulated data")
    p.add_argument("--out", default="runs/default", help="output directory")
    p.add_argument("--sim-set", action="append", metavar="KEY=VALUE", help="override a SimulationConfig key")
    p.add_argument("--model-set", action="append", metavar="KEY=VALUE", help="override a ModelConfig key")
    p.add_argument("--train-set", action="append", metavar="KEY=VALUE", help="override a TrainConfig key")
    either = p.add_mutually_exclusive_group()
    either.add_argument("--resume", action="store_true", help="resume the training run")
    either.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_demo)
    return parser


class Terminated(BaseException):
    """A SIGTERM (kill, timeout, a batch scheduler) raised where the command is, so its outputs are cleaned up as
    on Ctrl-C: no staged or half-written file is left."""


def _terminate(signum, frame):
    raise Terminated()


def _interrupted(exc):
    """(message, exit status) for a Ctrl-C, ('interrupted', 130), or a SIGTERM, ('terminated', 143), also as
    numba-compiled code or a failed import wraps them; else None."""
    for cause in (exc, exc.__cause__ or exc.__context__):
        if isinstance(cause, KeyboardInterrupt):
            return "interrupted", 130
        if isinstance(cause, Terminated):
            return "terminated", 143
    return None


@contextlib.contextmanager
def sigterm_raises():
    """A SIGTERM raises Terminated in the main thread while in this block (left alone where it is ignored or
    handled by someone else, or off the main thread). A Ctrl-C or SIGTERM that lands in a finalizer (a
    ``__del__`` the garbage collector runs), where Python prints "Exception ignored" and drops it, is sent again
    a moment later (the same signal, so a block that defers signals defers it too): else the command would run on
    to its end and exit 0."""
    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, _terminate)
    hook = sys.unraisablehook
    if main_thread:
        sys.unraisablehook = functools.partial(_dropped_interrupt, hook)
    try:
        yield
    finally:
        if main_thread:
            sys.unraisablehook = hook
            while _RESEND:  # the block is over: what it would have sent again goes with it
                _RESEND.pop().cancel()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_RESEND = []  # the timers sending a dropped interrupt's signal again


def _dropped_interrupt(fallback, unraisable):
    """sys.unraisablehook inside :func:`sigterm_raises`: the signal of an interrupt raised in a finalizer is sent
    again in a moment, from a timer thread (should it land in a finalizer again, it comes back here); anything
    else goes to the hook that was there."""
    if isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
        signum = signal.SIGINT if isinstance(unraisable.exc_value, KeyboardInterrupt) else signal.SIGTERM
        timer = threading.Timer(0.01, signal.raise_signal, (signum,))
        timer.daemon = True
        _RESEND.append(timer)
        timer.start()
        return
    fallback(unraisable)


def _allocator_refused(text):
    """Whether a RuntimeError's first line is an allocator's refusal (torch on the CPU, CUDA or MPS), not any
    error that mentions memory (a worker killed 'out of memory?' is another matter)."""
    return "DefaultCPUAllocator: can't allocate memory" in text or text.startswith(
        ("CUDA out of memory", "MPS backend out of memory"))


def _file_in_the_way(path):
    return f"{path}: exists and is a file; an output directory is needed there"


@contextlib.contextmanager
def one_line_errors(prog):
    """How a command ends on a user's mistake or an interruption (``argminn`` and the benchmarks alike): bad
    input, the file system's refusals (an output path that is a file, no permission, disk full) and an
    allocator's (out of memory) print ``<prog>: error: ...`` and exit 2; a Ctrl-C or SIGTERM prints one line and exits 130 or 143 (SystemExit)."""
    try:
        yield
    except (ArgminnError, OSError) as exc:
        if isinstance(exc, FileExistsError) and exc.filename and os.path.isfile(exc.filename):
            exc = _file_in_the_way(exc.filename)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (MemoryError, RuntimeError) as exc:  # torch's allocators raise RuntimeErrors (CUDA's a subclass)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, MemoryError) and not _allocator_refused(text):
            raise
        print(f"{prog}: error: out of memory ({text}); make the model, the batch or the input smaller",
              file=sys.stderr)
        raise SystemExit(2) from None
    except (KeyboardInterrupt, Terminated, SystemError, ImportError) as exc:
        # SystemError: a Ctrl-C or SIGTERM inside numba-compiled code (memelite's TOMTOM/FIMO) arrives wrapped;
        # ImportError: one during a module's first import (scipy's, at the first metrics) ends that import
        found = _interrupted(exc)
        if found is None:
            raise
        print(f"{prog}: {found[0]}", file=sys.stderr)
        raise SystemExit(found[1]) from None


def main(argv=None):
    args = build_parser().parse_args(argv)
    steady_allocator()  # no page-fault churn on every batch's tensors (ARGMINN_MALLOC_TUNING=0: off)
    with sigterm_raises():
        return _run(args)


def _run(args):
    try:
        with one_line_errors("argminn"):
            world = int(os.environ.get("WORLD_SIZE", "1"))
            if world > 1 and args.func is not cmd_train:  # every process would run it and write the same files
                raise ArgminnError(f"'argminn {args.command}' runs in one process; under torchrun (WORLD_SIZE="
                                   f"{world}) only 'argminn train' runs")
            for option, what in (("out", "directory"), ("output", "file")):  # checked before any work
                if getattr(args, option, None) == "":
                    raise ArgminnError(f"--{option}: empty; give a {what} name")
            if getattr(args, "out", None) and os.path.isfile(args.out):
                raise ArgminnError(_file_in_the_way(args.out))
            args.func(args)
    except SystemExit as stop:
        return stop.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
