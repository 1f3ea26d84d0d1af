"""Tutorial 2: train ARGMINN from scratch, then read motifs, instances and syntax from it.

The same steps as `argminn demo`, through the Python API, on a dataset and
budget you choose. Without `--quick`, the default dataset and the demo's
settings are used (about 5 minutes on 2 cores). `--quick` (used by the tests)
trains the same model for 6 epochs on a smaller dataset, in about a minute,
with the design's default overlap weight (1e-3) instead of the demo's 0.05:
the stronger term keeps FOXA2 from being learned twice (once per
orientation) but holds the model near chance for longer than 6 epochs
(held-out auROC 0.55 after 6, 0.60 after 12), while 1e-3 reaches about 0.98
in 6 epochs, with the risk of a duplicate FOXA2 filter.

Run:  python tutorials/02_train_from_scratch.py --out runs/tutorial2 [--quick]
"""

import argparse
import json
import os

from argminn_plugin import ModelConfig, TrainConfig
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
    train_cfg = TrainConfig(max_epochs=6) if quick else TrainConfig(overlap_weight=0.05, patience=8, max_epochs=40)
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
