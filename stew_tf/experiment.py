"""run_experiment(config): data → stage 1 → stage 2 → evaluation → results.json → export."""

import contextlib
import dataclasses
import hashlib
import os
import time

import keras
import numpy as np
import tensorflow as tf

import stew_tf
from stew_tf import data
from stew_tf import evaluation
from stew_tf import export
from stew_tf import listeners
from stew_tf import models
from stew_tf import teachers
from stew_tf import train
from stew_tf import train_step
from stew_tf import workdir as workdir_lib


class ConfigError(Exception):
  """The settings cannot train a sensible model on this data; the message says why."""


def prepare_data(config):
  """The splits ({"train", "selection", "validation", "test"}) and the data's identity."""
  builder = data.make_builder(config.dataset, config.label, config.data_dir, config.manual_dir,
                              config.download)
  modalities = [m for m in (config.strong, config.weak) if m]

  def load(split):
    return data.load_split(builder, split, modalities, config.label, config.batch_size)

  if config.validation == "none":
    splits = {"train": load("train+validation"), "validation": None}
  else:
    splits = {"train": load("train"), "validation": load("validation")}
  splits["test"] = load("test")
  splits["selection"] = splits["test"] if config.select_on == "test" else splits["validation"]
  return splits, data_record(builder)


def data_record(builder):
  """The prepared dataset's name, version and a fingerprint of its contents."""
  digest = hashlib.sha256()
  folder = builder.data_dir
  for name in sorted(os.listdir(folder)):
    if ".tfrecord" in name or name == "features.json":
      digest.update(name.encode())
      with open(os.path.join(folder, name), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return {"dataset_version": builder.info.full_name,
          "data_fingerprint": digest.hexdigest()[:16]}


def check_dcca_batches(config, train_split):
  """Stops before training when a batch can hold too few segments for DCCA's covariances."""
  if not config.method_info.alignment:
    return
  lengths = np.sort([int(example["length"])
                     for example in train_split.dataset.as_numpy_iterator()])
  size = config.batch_size
  smallest_batch = len(lengths) % size or size  # the last batch of an epoch, or a full one
  fewest = int(lengths[:smallest_batch].sum())
  if fewest <= models.LATENT_DIM:
    raise ConfigError(
        f"--batch_size={size}: DCCA estimates {models.LATENT_DIM}x{models.LATENT_DIM} covariances "
        f"from each batch's valid segments, but a batch of these training clips can hold as few "
        f"as {fewest} (rank-deficient: the correlation would be noise); use a larger "
        f"--batch_size, or --method=no_lfa")


def _encoder(config, modality, gru_layers, dropout, train_split, name, identity=False):
  dim = config.spec.modalities[modality]
  mean, variance = train_split.feature_moments(modality)
  if identity:
    return models.build_identity_encoder(dim, mean, variance, name)
  return models.build_encoder(dim, gru_layers, dropout, mean, variance, name)


def _strong_normalizer(config, train_split):
  """The decoder's target: the strong features standardised with training-split moments."""
  normalizer = models.build_normalizer(*train_split.feature_moments(config.strong), "strong")
  # Built now, eagerly: built inside the traced step its constants would belong to that graph.
  normalizer.build((None, None, config.spec.modalities[config.strong]))
  return normalizer


def build_stages(config, train_split):
  """The stages that `config.method` trains, in order (models built, weights fresh)."""
  method, task = config.method_info, config.task
  label_range = config.spec.label_range(config.label)
  stages, teacher = [], None
  if method.trains_teacher:
    teacher = _encoder(config, config.strong, config.strong_gru_layers, config.strong_dropout,
                       train_split, "strong")
    stages.append(train_step.Stage(
        name="stage1", modality=config.strong, encoder=teacher, task=task,
        classifier=models.build_classifier(models.LATENT_DIM, task, "strong",
                                           config.classifier_dropout, label_range)))
  encoder = _encoder(config, config.weak, config.weak_gru_layers, config.dropout, train_split,
                     "weak", identity=method.identity_encoder)
  latent_dim = encoder.outputs[0].shape[-1]
  strong_dim = config.spec.modalities[config.strong] if method.uses_strong else None
  stages.append(train_step.Stage(
      name="stage2" if method.uses_strong else "stage1", modality=config.weak, encoder=encoder,
      classifier=models.build_classifier(latent_dim, task, "weak", config.classifier_dropout,
                                         label_range),
      task=task, alignment=method.alignment, translation=method.translation,
      teacher=teacher if method.alignment else None, strong_modality=config.strong,
      decoder=(models.build_decoder(latent_dim, strong_dim, config.decoder_units,
                                    config.decoder_layers, "weak")
               if method.translation else None),
      strong_normalizer=(_strong_normalizer(config, train_split) if method.translation
                         else None),
      alpha=config.alpha, beta=config.beta, dcca_r1=config.dcca_r1, dcca_r2=config.dcca_r2))
  return stages


def _trainer(config, stage, state_dir, tensorboard_dir, strategy, budget, log):
  modalities = {m: config.spec.modalities[m] for m in (config.strong, config.weak) if m}
  selection_name = "test_selection" if config.select_on == "test" else "validation"
  console_name = "test (selection)" if config.select_on == "test" else "val"
  return train.StageTrainer(
      stage, modalities, config.learning_rate, state_dir, seed=config.seed,
      epochs=config.epochs, patience=config.patience, budget=budget, strategy=strategy,
      jit_compile=config.jit_compile,
      listeners=[listeners.Progress(), listeners.ConsoleLog(log, console_name),
                 listeners.TensorBoardLog(tensorboard_dir, config.learning_rate,
                                          selection_name)])


def _train_stages(config, stages, splits, record, strategy, log):
  """Fits every stage (the teacher through the shared cache); returns {stage name: trainer}."""
  budget = train.StepBudget(config.stop_after_steps)
  trainers, done = {}, {}
  for stage in stages:
    folders = [os.path.join(config.workdir, kind, stage.name)
               for kind in ("checkpoints", "tensorboard")]
    place = contextlib.nullcontext()
    if stage is not stages[-1]:  # the teacher: kept in the shared cache, locked while trained
      place = teachers.Entry(config.teacher_cache, teachers.identity(config, record), log)
    with place as entry:
      if entry is not None:
        log(f"[stage1] teacher: {entry.directory}")
        for link, target in zip(folders, (entry.checkpoint_dir, entry.tensorboard_dir)):
          _link(target, link)
      trainer = _trainer(config, stage, *folders, strategy, budget, log)
      done[stage.name] = trainer.fit(splits["train"], splits["selection"], log)
    trainers[stage.name] = trainer
  return trainers, done


def _link(target, link):
  """`link` → `target`, so that a workdir shows its teacher's checkpoints and TensorBoard logs."""
  os.makedirs(target, exist_ok=True)
  os.makedirs(os.path.dirname(link), exist_ok=True)
  if not os.path.lexists(link):
    os.symlink(os.path.abspath(target), link)


def run_experiment(config, log=print):
  """Trains and evaluates one configuration; returns the results dict written to results.json.

  The workdir is locked for the whole run; its record must match `config` (workdir.py).
  """
  start = time.time()
  lock = workdir_lib.lock_workdir(config.workdir)
  try:
    return _run_locked(config, log, start)
  finally:
    lock.release()


def _run_locked(config, log, start):
  log(f"stew_tf: {config.method} on {config.dataset} ({config.label}); strong={config.strong} "
      f"weak={config.weak}; workdir {config.workdir}")
  set_threads(config.intra_op_threads, config.inter_op_threads)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  if config.mixed_precision:
    keras.mixed_precision.set_global_policy("mixed_float16")
  strategy = make_strategy(config.strategy)
  splits, data_identity = prepare_data(config)
  record = {**config.recorded(), **data_identity, "stew_tf_version": stew_tf.__version__}
  workdir_lib.check_record(config.workdir, record, config.overwrite, log)
  check_dcca_batches(config, splits["train"])
  # Seeded after the data is prepared, so that preparing it changes no number of this run.
  keras.utils.set_random_seed(config.seed)
  with strategy.scope():
    stages = build_stages(config, splits["train"])
  trainers, done = _train_stages(config, stages, splits, data_identity, strategy, log)
  results = _results(config, stages, trainers, done, splits, start)
  predictor = models.build_predictor(stages[-1].encoder, stages[-1].classifier, stages[-1].name)
  results["export_dir"] = export.export_predictor(predictor, os.path.join(config.workdir, "export"))
  workdir_lib.write_json(os.path.join(config.workdir, "results.json"), results)
  log(summary_table(results))
  if results["degenerate"]:
    log(f"warning: the weak model {results['degenerate']['text']}: it has learnt (nearly) "
        "nothing; results.json records this under 'degenerate'")
  return results


def _results(config, stages, trainers, done, splits, start):
  """results.json (also writes predictions.npz of the weak model)."""
  sentiment = config.dataset == "mosi" and config.task == "regression"

  def predictions_of(stage):
    return {name: trainers[stage.name].predict(splits[name]) for name in ("validation", "test")
            if splits[name] is not None}

  def metrics_of(predictions):
    return {key: (evaluation.split_metrics(config.task, predictions[name], sentiment)
                  if name in predictions else None)
            for key, name in (("val", "validation"), ("test", "test"))}

  weak = predictions_of(stages[-1])
  np.savez(os.path.join(config.workdir, "predictions.npz"),
           **{k: v for name, p in weak.items() for k, v in p.arrays(name).items()})
  teacher = stages[0] if len(stages) > 1 else None
  epochs = {"stage1": done["stage1"]["epochs"] if teacher else 0,
            "stage2": done[stages[-1].name]["epochs"]}
  return {
      "dataset": config.dataset, "label": config.label, "strong": config.strong,
      "weak": config.weak, "method": config.method, "seed": config.seed,
      "strong_choice": ({"auto": True, "ranking": config.strong_ranking}
                        if config.strong_ranking else None),
      "selected_on": config.select_on if config.validation == "split" else "none (last epoch)",
      "flags": dataclasses.asdict(config),
      "strong_model": metrics_of(predictions_of(teacher)) if teacher else None,
      "weak_model": metrics_of(weak),
      "epochs": epochs,
      "kept_epoch": {name: d["best_epoch"] for name, d in done.items()},
      "degenerate": evaluation.degeneracy(config.task, weak["test"]),
      "stew_tf_version": stew_tf.__version__,
      "wall_seconds": time.time() - start,
  }


def set_threads(intra_op, inter_op=None):
  """Sizes TensorFlow's thread pools (inter_op None: its default); they can only be sized
  before TensorFlow runs its first op, so a process that already runs with other sizes stops."""
  wanted = (intra_op, inter_op or 0)
  threading = tf.config.threading
  current = (threading.get_intra_op_parallelism_threads(),
             threading.get_inter_op_parallelism_threads())
  if wanted == current:
    return
  try:
    threading.set_intra_op_parallelism_threads(wanted[0])
    threading.set_inter_op_parallelism_threads(wanted[1])
  except RuntimeError:
    raise ConfigError(
        f"--intra_op_threads={intra_op} --inter_op_threads={inter_op or 'default'}: this process "
        f"already runs TensorFlow with {current[0] or 'default'} and {current[1] or 'default'}; "
        "they can only be set before TensorFlow starts (run stew_tf.main in its own process)"
    ) from None


def make_strategy(name):
  """The tf.distribute strategy named by --strategy."""
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  return tf.distribute.get_strategy()


def _metric_text(metrics):
  parts = []
  for name, value in metrics.items():
    if isinstance(value, float):
      parts.append(f"{name} {value:.4f}")
    elif name == "confusion":
      (tn, fp), (fn, tp) = value
      parts.append(f"confusion tn/fp/fn/tp {tn}/{fp}/{fn}/{tp}")
  return "  ".join(parts)


def summary_table(results):
  """A plain-text table of the final metrics."""
  rows = []
  for model in ("strong_model", "weak_model"):
    if results[model] is None:
      continue
    modality = results["strong"] if model == "strong_model" else results["weak"]
    for split in ("val", "test"):
      if results[model][split] is not None:
        rows.append(f"  {model:<12} {modality:<17} {split:<5} "
                    f"{_metric_text(results[model][split])}")
  selected = results["selected_on"]
  note = ("  SELECTED ON TEST: optimistic, not a result" if selected == "test" else
          f"  epochs selected on: {selected}")
  header = (f"Results: {results['method']} on {results['dataset']} ({results['label']}), "
            f"seed {results['seed']}, epochs {results['epochs']}, "
            f"{results['wall_seconds']:.0f}s")
  return "\n".join([header, note, *rows])
