"""Tutorial 2: train ARGMINN from scratch, then read motifs, instances and syntax from it.

The same steps as `argminn demo`, through the Python API, on a dataset and
budget you choose. Without `--quick`, the default dataset and the demo's
tuned setting (config.TUNED_TRAIN: regularizers warmed up over 20 epochs,
filter resampling, the best of three warm-ups, one of two filters with one
motif pruned at the end, sharper attention) are used (about 2.5 minutes on 2 cores). `--quick` (used by
the tests) trains the same model for 6 epochs on a smaller dataset, in about
a minute, with the design defaults: the tuned setting's regularizers are not
even on by then, and the design's overlap term (1e-3 from the first step)
learns the rule in 6 epochs (auROC about 0.98), possibly with FOXA2 once per
orientation. (The demo's earlier setting, the overlap term at 0.05 from the
first step, left the 6-epoch model near chance: auROC 0.55.)

Run:  python tutorials/02_train_from_scratch.py --out runs/tutorial2 [--quick]
"""

import argparse
import json
import os

from argminn_plugin import ModelConfig, TrainConfig
from argminn_plugin.config import TUNED_EPOCHS, TUNED_PATIENCE, TUNED_TRAIN
from argminn_plugin.data import load_splits, rows_with_label
from argminn_plugin.interpret import instance_report
from argminn_plugin.report import motif_report
from argminn_plugin.simulate import SimulationConfig, planted_instances, simulate
from argminn_plugin.train import classification_metrics, evaluate, train


def main(out, quick=False):
    sim = SimulationConfig(n_train=1500, n_valid=300, n_test=300) if quick else SimulationConfig()
    data = os.path.join(out, "data")
    meta = simulate(data, sim, force=True)
    splits, names = load_splits(os.path.join(data, "genome.fa"), os.path.join(data, "peaks.bed"), sim.length,
                                [meta["splits"]["valid"]], [meta["splits"]["test"]])
    model_cfg = ModelConfig(input_length=sim.length, task_names=tuple(names))
    train_cfg = TrainConfig(max_epochs=6) if quick else TrainConfig(**TUNED_TRAIN, max_epochs=TUNED_EPOCHS,
                                                                     patience=TUNED_PATIENCE)
    model, history = train(model_cfg, train_cfg, splits["train"][:2], splits["valid"][:2],
                           os.path.join(out, "run"), force=True, verbose=False)
    X, y, bed = splits["test"]
    _, probs = evaluate(model, X, y)
    metrics = classification_metrics(y, probs)[0]
    print(f"{len(history)} epochs; held-out auROC {metrics['auroc']:.3f}, auPRC {metrics['auprc']:.3f}")

    motif_report(model, splits["train"][0], os.path.join(out, "motifs"), force=True,
                 planted=os.path.join(data, "simulation.json"))
    positives, _, bed = rows_with_label(X, y, bed)
    summary = instance_report(model, positives, bed, os.path.join(out, "motifs"), os.path.join(out, "instances"),
                              truth=planted_instances(data, bed), force=True)
    print(json.dumps(summary, indent=1))
    return metrics, summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/tutorial2")
    parser.add_argument("--quick", action="store_true", help="small data, 6 epochs, the default overlap weight")
    args = parser.parse_args()
    main(args.out, args.quick)
