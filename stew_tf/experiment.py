"""run_experiment(config): data → stage 1 → stage 2 → evaluation → results.json → export."""

import contextlib
import dataclasses
import hashlib
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import stew_tf
from stew_tf import data
from stew_tf import evaluation
from stew_tf import export
from stew_tf import hparams
from stew_tf import listeners
from stew_tf import models
from stew_tf import records
from stew_tf import splits
from stew_tf import teachers
from stew_tf import train
from stew_tf import train_step
from stew_tf import workdir as workdir_lib


class ConfigError(Exception):
  """The settings cannot train a sensible model on this data; the message says why."""


def prepare_data(config):
  """The splits ({"train", "validation", "test"} and "selection", the one that picks the epoch)
  and the prepared data's record."""
  runtime = config.runtime
  builder = data.make_builder(config.data.dataset, config.data.label, runtime.data_dir,
                              runtime.manual_dir, runtime.download, config.data.recordings)

  def load(split):
    return data.load_split(builder, split, config.modalities, config.data.label,
                           config.trainer.batch_size)

  trainer = config.trainer
  if trainer.validation == "none":
    loaded = {splits.TRAIN: load(f"{splits.TRAIN}+{splits.VALIDATION}"), splits.VALIDATION: None}
  else:
    loaded = {splits.TRAIN: load(splits.TRAIN), splits.VALIDATION: load(splits.VALIDATION)}
  loaded[splits.TEST] = load(splits.TEST)
  loaded["selection"] = loaded[trainer.select_on]
  return loaded, data_record(builder)


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
  if not config.alignment:
    return
  lengths = np.sort([int(example["length"])
                     for example in train_split.dataset.as_numpy_iterator()])
  size = config.trainer.batch_size
  smallest_batch = len(lengths) % size or size  # the last batch of an epoch, or a full one
  fewest = int(lengths[:smallest_batch].sum())
  if fewest <= models.LATENT_DIM:
    raise ConfigError(
        f"--batch_size={size}: DCCA estimates {models.LATENT_DIM}x{models.LATENT_DIM} covariances "
        f"from each batch's valid segments, but a batch of these training clips can hold as few "
        f"as {fewest} (rank-deficient: the correlation would be noise); use a larger "
        f"--batch_size, or --method=no_lfa")


def _encoder(config, modality, encoder, train_split, name):
  """`encoder` (a config.Encoder) for `modality`; None: input normalisation only."""
  dim = config.spec.modalities[modality]
  mean, variance = train_split.feature_moments(modality)
  if encoder is None:
    return models.build_identity_encoder(dim, mean, variance, name)
  return models.build_encoder(dim, encoder.gru_layers, encoder.dropout, mean, variance, name)


def _strong_normalizer(config, modality, train_split):
  """A decoder's target: `modality`'s features standardised with training-split moments."""
  normalizer = models.build_normalizer(*train_split.feature_moments(modality), "strong")
  # Built now, eagerly: built inside the traced step its constants would belong to that graph.
  normalizer.build((None, None, config.spec.modalities[modality]))
  return normalizer


def _teacher_stage(config, teacher, train_split):
  """Stage 1 of one teacher (strong encoder + classifier), built as a run with that teacher
  alone builds it: right after seeding, so that it is the same teacher in any run."""
  keras.utils.set_random_seed(config.trainer.seed)
  several = len(config.teachers) > 1
  return train_step.Stage(
      name=f"stage1/{teacher.modality}" if several else "stage1", modality=teacher.modality,
      encoder=_encoder(config, teacher.modality, teacher.encoder, train_split, "strong"),
      classifier=models.build_classifier(models.LATENT_DIM, config.data.task, "strong",
                                         teacher.classifier_dropout,
                                         config.spec.label_range(config.data.label)),
      task=config.data.task)


def build_stages(config, train_split):
  """The stages that `config` trains, in order (models built, weights fresh): one per teacher,
  then the student's."""
  task = config.data.task
  stages = [_teacher_stage(config, teacher, train_split) for teacher in config.teachers]
  teachers = {stage.modality: stage.encoder for stage in stages}
  student = config.student
  encoder = _encoder(config, student.modality, student.encoder, train_split, "weak")
  latent_dim = encoder.outputs[0].shape[-1]
  classifier = models.build_classifier(latent_dim, task, "weak", student.classifier_dropout,
                                       config.spec.label_range(config.data.label))
  alignments = dict(zip(config.strong_modalities, config.alignments))
  translations = dict(zip(config.strong_modalities, config.translations))
  strong = []
  for modality in config.strong_modalities:
    alignment, translation = alignments.get(modality), translations.get(modality)
    strong.append(train_step.StrongTerms(
        modality, teacher=teachers.get(modality),
        decoder=(models.build_decoder(latent_dim, config.spec.modalities[modality],
                                      translation.decoder_units, translation.decoder_layers,
                                      "weak") if translation else None),
        normalizer=_strong_normalizer(config, modality, train_split) if translation else None,
        alpha=alignment.alpha if alignment else 0.0, beta=translation.beta if translation else 0.0,
        dcca_r1=alignment.r1 if alignment else 0.0, dcca_r2=alignment.r2 if alignment else 0.0))
  stages.append(train_step.Stage(
      name="stage2" if config.strong else "stage1", modality=student.modality, encoder=encoder,
      classifier=classifier, task=task, alignment=bool(config.alignment),
      translation=bool(config.translation), strong=tuple(strong)))
  return stages


def _trainer(config, stage, trainer, state_dir, tensorboard_dir, strategy, budget, log):
  """The StageTrainer of `stage` with `trainer` (a config.Trainer: the teacher's or the
  student's settings)."""
  modalities = {m: config.spec.modalities[m] for m in config.modalities}
  selection = splits.selection_name(trainer.select_on)
  return train.StageTrainer(
      stage, modalities, trainer.learning_rate, state_dir, seed=trainer.seed,
      epochs=trainer.epochs, patience=trainer.patience, budget=budget, strategy=strategy,
      jit_compile=config.numerics.jit_compile, cache_teacher_latents=True,
      listeners=[listeners.Progress(), listeners.ConsoleLog(log, selection),
                 listeners.TensorBoardLog(tensorboard_dir, trainer.learning_rate, selection)])


def _with_batch_size(loaded, batch_size):
  return {name: split and dataclasses.replace(split, batch_size=batch_size)
          for name, split in loaded.items()}


def _train_stages(config, stages, loaded, data_identity, strategy, log):
  """Fits every stage (each teacher through the shared cache, with its own trainer settings);
  returns ({stage name: trainer}, {stage name: done marker}, {strong modality: cache entry})."""
  budget = train.StepBudget(config.runtime.stop_after_steps)
  trainers, done, entries = {}, {}, {}
  teacher_of = {stage.name: teacher for stage, teacher in zip(stages, config.teachers)}
  for stage in stages:
    folders = [os.path.join(config.runtime.workdir, kind, stage.name)
               for kind in ("checkpoints", "tensorboard")]
    place, trainer_config, stage_splits = contextlib.nullcontext(), config.trainer, loaded
    if stage.name in teacher_of:  # a teacher: kept in the shared cache, locked while trained
      trainer_config = teacher_of[stage.name].trainer
      stage_splits = _with_batch_size(loaded, trainer_config.batch_size)
      place = teachers.Entry(config.runtime.teacher_cache,
                             config.teacher_identity(data_identity, teacher_of[stage.name]), log)
    with place as entry:
      if entry is not None:
        log(f"[{stage.name}] teacher: {entry.directory}")
        entries[stage.modality] = entry.directory
        for link, target in zip(folders, (entry.checkpoint_dir, entry.tensorboard_dir)):
          _link(target, link)
      trainer = _trainer(config, stage, trainer_config, *folders, strategy, budget, log)
      done[stage.name] = trainer.fit(stage_splits[splits.TRAIN], stage_splits["selection"], log)
    trainers[stage.name] = trainer
  return trainers, done, entries


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
  lock = workdir_lib.lock_workdir(config.runtime.workdir)
  try:
    return _run_locked(config, log, start)
  finally:
    lock.release()


def _run_locked(config, log, start):
  runtime, numerics = config.runtime, config.numerics
  log(f"stew_tf: {config.method} on {config.data.dataset} ({config.data.label}); "
      f"strong={config.strong} weak={config.student.modality}; workdir {runtime.workdir}")
  set_threads(numerics.intra_op_threads, runtime.inter_op_threads)
  if numerics.deterministic:
    tf.config.experimental.enable_op_determinism()
  if numerics.mixed_precision:
    keras.mixed_precision.set_global_policy("mixed_float16")
  strategy = make_strategy(numerics.strategy)
  loaded, data_identity = prepare_data(config)
  workdir_lib.check_record(runtime.workdir, config.identity(data_identity), runtime.overwrite,
                           log)
  check_dcca_batches(config, loaded[splits.TRAIN])
  # Seeded after the data is prepared, so that preparing it changes no number of this run.
  keras.utils.set_random_seed(config.trainer.seed)
  with strategy.scope():
    stages = build_stages(config, loaded[splits.TRAIN])
  trainers, done, entries = _train_stages(config, stages, loaded, data_identity, strategy, log)
  results = _results(config, stages, trainers, done, loaded, start)
  results["teachers"] = entries or None
  predictor = models.build_predictor(stages[-1].encoder, stages[-1].classifier, stages[-1].name)
  recipe = data.feature_recipe(config.data.dataset, runtime.manual_dir, config.student.modality,
                               config.data.recordings)
  results["export_dir"] = export.export_predictor(
      predictor, os.path.join(runtime.workdir, "export"), feature_recipe=recipe)
  records.write_json(os.path.join(runtime.workdir, "results.json"), results)
  hparams.write(runtime.workdir, config, results)
  log(evaluation.summary_table(results))
  if results["degenerate"]:
    log(f"warning: the weak model {results['degenerate']['text']}: it has learnt (nearly) "
        "nothing; results.json records this under 'degenerate'")
  return results


def _results(config, stages, trainers, done, loaded, start):
  """results.json (also writes predictions.npz of the weak model)."""
  # CMU-MOSI's sentiment score also gets the metrics that MOSI papers report (Acc-7, Acc-2, ...).
  sentiment = (config.data.dataset, config.data.label) == ("mosi", "sentiment_score")

  def predictions_of(stage, stage_splits):
    return {name: trainers[stage.name].predict(stage_splits[name]) for name in splits.EVALUATED
            if stage_splits[name] is not None}

  def metrics_of(predictions):
    return {name: (evaluation.split_metrics(config.data.task, predictions[name], sentiment)
                   if name in predictions else None) for name in splits.EVALUATED}

  weak = predictions_of(stages[-1], loaded)
  np.savez(os.path.join(config.runtime.workdir, "predictions.npz"),
           **{k: v for name, p in weak.items() for k, v in p.arrays(name).items()})
  teacher_stages = stages[:-1]
  strong_model = {stage.modality: metrics_of(predictions_of(
      stage, _with_batch_size(loaded, teacher.trainer.batch_size)))
                  for stage, teacher in zip(teacher_stages, config.teachers)}
  teacher_epochs = {stage.name: done[stage.name]["epochs"] for stage in teacher_stages}
  epochs = {"stage1": 0, "stage2": done[stages[-1].name]["epochs"]}
  if len(teacher_epochs) == 1:
    epochs["stage1"] = done["stage1"]["epochs"]
  elif teacher_epochs:  # each teacher's, and their mean as "stage1"
    epochs.update(stage1=statistics.fmean(teacher_epochs.values()), **teacher_epochs)
  ranking = config.runtime.strong_ranking
  trainer = config.trainer
  return {
      "dataset": config.data.dataset, "label": config.data.label, "strong": config.strong,
      "weak": config.student.modality, "method": config.method, "seed": trainer.seed,
      "strong_choice": {"auto": True, "ranking": ranking} if ranking else None,
      "selected_on": trainer.select_on if trainer.validation == "split" else "none (last epoch)",
      "config": config.as_dict(),
      # One teacher: its metrics; several: {strong modality: its metrics}.
      "strong_model": (strong_model.popitem()[1] if len(strong_model) == 1
                       else strong_model or None),
      "weak_model": metrics_of(weak),
      "epochs": epochs,
      "kept_epoch": {name: d["best_epoch"] for name, d in done.items()},
      "degenerate": evaluation.degeneracy(config.data.task, weak[splits.TEST]),
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
