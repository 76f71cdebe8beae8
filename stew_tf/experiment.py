"""run_experiment(config): data → stage 1 → stage 2 → evaluation → results.json → export."""

import dataclasses
import json
import os
import time

import keras
import tensorflow as tf

from stew_tf import data
from stew_tf import export
from stew_tf import models
from stew_tf import train


def _splits(config):
  builder = data.make_builder(config.dataset, config.label, config.data_dir, config.manual_dir,
                              config.download)
  modalities = [m for m in (config.strong, config.weak) if m]
  return {split: data.load_split(builder, split, modalities, config.label, config.batch_size)
          for split in ("train", "validation", "test")}


def _encoder(config, modality, gru_layers, dropout, train_split, name, identity=False):
  dim = config.spec.modalities[modality]
  mean, variance = train_split.feature_moments(modality)
  if identity:
    return models.build_identity_encoder(dim, mean, variance, name)
  return models.build_encoder(dim, gru_layers, dropout, mean, variance, name)


def build_stages(config, train_split):
  """The stages that `config.method` trains, in order (models built, weights fresh)."""
  task = config.spec.task
  stages = []
  teacher = None
  if config.transfer:
    teacher = _encoder(config, config.strong, config.strong_gru_layers, config.strong_dropout,
                       train_split, "strong")
    stages.append(train.Stage(
        name="stage1", modality=config.strong, encoder=teacher, task=task,
        classifier=models.build_classifier(models.LATENT_DIM, task, "strong")))
  identity = config.method == "cls_only"
  encoder = _encoder(config, config.weak, config.weak_gru_layers, config.dropout, train_split,
                     "weak", identity=identity)
  latent_dim = encoder.outputs[0].shape[-1]
  decoder = None
  if config.uses_decoder:
    decoder = models.build_decoder(latent_dim, config.spec.modalities[config.strong],
                                   config.decoder_units, config.decoder_layers, "weak")
  stages.append(train.Stage(
      name="stage2" if config.transfer else "stage1", modality=config.weak, encoder=encoder,
      classifier=models.build_classifier(latent_dim, task, "weak"), task=task,
      teacher=teacher if config.uses_alignment else None,
      strong_modality=config.strong, decoder=decoder,
      strong_normalizer=teacher.get_layer("strong_normalize") if decoder is not None else None,
      alpha=config.alpha, beta=config.beta, dcca_r1=config.dcca_r1, dcca_r2=config.dcca_r2))
  return stages


def run_experiment(config, log=print):
  """Trains and evaluates one configuration; returns the results dict written to results.json."""
  start = time.time()
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  os.makedirs(config.workdir, exist_ok=True)
  log(f"stew_tf: {config.method} on {config.dataset} ({config.label}); strong={config.strong} "
      f"weak={config.weak}; workdir {config.workdir}")
  if config.mixed_precision:
    keras.mixed_precision.set_global_policy("mixed_float16")
  strategy = make_strategy(config.strategy)
  splits = _splits(config)
  modalities = {m: config.spec.modalities[m] for m in (config.strong, config.weak) if m}
  with strategy.scope():
    stages = build_stages(config, splits["train"])
  budget = train.StepBudget(config.stop_after_steps)
  evaluations, epochs = {}, {}
  for stage in stages:
    trainer = train.Trainer(stage, modalities, config.learning_rate, config.epochs,
                            config.patience, config.seed, config.workdir, budget, log,
                            strategy=strategy, jit_compile=config.jit_compile)
    epochs[stage.name] = trainer.fit(splits["train"], splits["validation"])
    evaluations[stage.name] = {split: trainer.evaluate(splits[split])
                               for split in ("validation", "test")}
  weak_stage = stages[-1]
  results = {
      "dataset": config.dataset, "label": config.label, "strong": config.strong,
      "weak": config.weak, "method": config.method, "seed": config.seed,
      "flags": dataclasses.asdict(config),
      "strong_model": _val_test(evaluations["stage1"]) if config.transfer else None,
      "weak_model": _val_test(evaluations[weak_stage.name]),
      "epochs": {"stage1": epochs.get("stage1", 0),
                 "stage2": epochs.get("stage2", 0) if config.transfer else 0},
      "wall_seconds": time.time() - start,
  }
  if not config.transfer:
    # A uni-modal baseline has one stage: it is the weak model's.
    results["epochs"] = {"stage1": 0, "stage2": epochs["stage1"]}
  predictor = build_predictor_of(weak_stage)
  results["export_dir"] = export.export_predictor(predictor, os.path.join(config.workdir, "export"))
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  log(summary_table(results))
  return results


def make_strategy(name):
  """The tf.distribute strategy named by --strategy."""
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  return tf.distribute.get_strategy()


def build_predictor_of(stage):
  return models.build_predictor(stage.encoder, stage.classifier, stage.name)


def _val_test(evaluation):
  return {"val": evaluation["validation"], "test": evaluation["test"]}


def summary_table(results):
  """A plain-text table of the final metrics."""
  rows = []
  for model in ("strong_model", "weak_model"):
    if results[model] is None:
      continue
    modality = results["strong"] if model == "strong_model" else results["weak"]
    for split in ("val", "test"):
      values = "  ".join(f"{k} {v:.4f}" for k, v in results[model][split].items())
      rows.append(f"  {model:<12} {modality:<17} {split:<5} {values}")
  header = (f"Results: {results['method']} on {results['dataset']} ({results['label']}), "
            f"seed {results['seed']}, epochs {results['epochs']}, "
            f"{results['wall_seconds']:.0f}s")
  return "\n".join([header, *rows])
