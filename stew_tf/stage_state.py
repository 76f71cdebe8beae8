"""A stage's state on disk: checkpoints, resume, early stopping and the done marker.

`last/` holds, after every finished epoch, everything that decides the rest of training: the
weights, the optimizer, the epoch, the early-stopping state and the state of every dropout
random generator (Keras does not put those in a model's checkpoint). Together with batch orders
that depend only on (seed, epoch), a run resumed from `last/` continues exactly as an
uninterrupted one would. `best/` holds the weights of the selected epoch; `done.json` marks a
finished stage.

Damaged state is named, never read silently: what can be rebuilt without losing work (the
done marker, TensorFlow's list of a folder's checkpoints, a newest `last/` checkpoint while an
older one is readable) is rebuilt with a line saying so; anything else raises
records.RecordError naming the file and the folder to delete.
"""

import math
import os
import re

import tensorflow as tf

from stew_tf import records

STATE_FILE = "checkpoint"  # TensorFlow's list of the checkpoints in a folder
DONE_KEYS = ("epochs", "best_epoch", "best_value")
_CHECKPOINT_INDEX = re.compile(r"ckpt-(\d+)\.index")


def random_generator_states(models):
  """The state variables of the models' seed generators (dropout), in the models' structural
  order (their names carry process-wide counters, so they cannot be the key)."""
  return [variable for model in models for variable in model.non_trainable_variables
          if "seed_generator_state" in variable.path]


def unreadable(prefix):
  """Why the checkpoint `prefix` cannot be restored ("missing", "truncated or corrupted"), or
  None when every tensor in it reads (checked before restoring, so that a damaged one changes
  nothing)."""
  if not tf.io.gfile.exists(f"{prefix}.index"):
    return "missing"
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except (tf.errors.OpError, LookupError, ValueError):  # what TensorFlow's reader raises
    return "truncated or corrupted"
  return None


def checkpoint_number(prefix):
  return int(prefix.rsplit("-", 1)[1])


def _numbers_on_disk(directory):
  """The numbers of the checkpoints whose index file is in `directory`, ascending."""
  names = os.listdir(directory) if os.path.isdir(directory) else []
  return sorted(int(match.group(1)) for match in map(_CHECKPOINT_INDEX.fullmatch, names)
                if match)


def _rebuild_state_file(directory, remedy):
  """Writes TensorFlow's list of checkpoints in `directory` anew from the checkpoint files
  there; returns their names."""
  path = os.path.join(directory, STATE_FILE)
  names = [f"ckpt-{number}" for number in _numbers_on_disk(directory)]
  if not names:
    raise records.RecordError(f"{path} is damaged and {directory} holds no checkpoint; {remedy}")
  # Timestamps after last_preserved_timestamp: CheckpointManager keeps only max_to_keep of them.
  stamps = [os.path.getmtime(os.path.join(directory, f"{name}.index")) for name in names]
  lines = [f'model_checkpoint_path: "{names[-1]}"',
           *(f'all_model_checkpoint_paths: "{name}"' for name in names),
           *(f"all_model_checkpoint_timestamps: {stamp!r}" for stamp in stamps),
           f"last_preserved_timestamp: {min(stamps) - 1.0!r}"]
  temporary = f"{path}.tmp"
  with open(temporary, "w") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(temporary, path)
  return names


def _open_manager(checkpoint, directory, max_to_keep, remedy, notes):
  """A CheckpointManager of `directory`. TensorFlow ignores a state file it cannot parse (the
  stage would silently start again and overwrite its checkpoints) or raises ValueError on one
  without a latest checkpoint: such a file is rebuilt from the checkpoints, noted in `notes`."""
  state_file = os.path.join(directory, STATE_FILE)
  logger = tf.get_logger()
  level = logger.level
  logger.setLevel("ERROR")  # its "ParseError ... Checkpoint ignored" warnings: said below
  try:
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
  except ValueError:
    manager = None
  finally:
    logger.setLevel(level)
  if manager is not None and (manager.latest_checkpoint or not os.path.exists(state_file)):
    return manager
  names = _rebuild_state_file(directory, remedy)
  notes.append(f"{state_file} (the list of the checkpoints there) was damaged; rebuilt it "
               f"from the checkpoint files ({', '.join(names)})")
  return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)


def _newest_readable(manager, remedy, log):
  """The newest readable checkpoint of `manager`, its latest or an older one still on disk (a
  damaged newer one is said on `log`); none raises RecordError with `remedy`."""
  newest = checkpoint_number(manager.latest_checkpoint)
  numbers = sorted({newest, *(n for n in _numbers_on_disk(manager.directory) if n < newest)},
                   reverse=True)
  damaged = {}  # prefix: problem
  for number in numbers:
    prefix = os.path.join(manager.directory, f"ckpt-{number}")
    problem = unreadable(prefix)
    if problem is None:
      break
    damaged[prefix] = problem
  else:
    listed = ", ".join(f"{os.path.basename(p)} is {problem}" for p, problem in damaged.items())
    raise records.RecordError(f"no checkpoint in {manager.directory} can be read ({listed}); "
                              f"{remedy}")
  if damaged:
    listed = "; ".join(f"{p} is {problem}" for p, problem in damaged.items())
    again = f"epoch {newest} is" if number + 1 == newest else f"epochs {number + 1}-{newest} are"
    log(f"checkpoint {listed}; resuming from {prefix} instead ({again} trained again, with the "
        "same result)")
  return prefix


def _restore(checkpoint, prefix, remedy, partial=False):
  """Restores `prefix` (every object of `checkpoint` matched unless `partial`); a checkpoint of
  other models raises RecordError with `remedy`."""
  try:
    status = checkpoint.restore(prefix)
    if partial:
      status.expect_partial()
    else:
      status.assert_existing_objects_matched()
  except (AssertionError, ValueError) as error:
    raise records.RecordError(f"checkpoint {prefix} does not hold this stage's models "
                              f"({str(error).splitlines()[0]}); {remedy}") from None


class StageState:
  """Checkpoints of one stage under `directory` (e.g. <workdir>/checkpoints/stage2)."""

  def __init__(self, directory, models, optimizer, strategy=None):
    # The real folder, so that messages name it: stage 1 of a workdir links to a teacher's.
    self.directory = os.path.realpath(directory)
    self.notes = []  # repairs made while opening the checkpoints, for the trainer to log
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
      self.best_value = tf.Variable(-math.inf, dtype=tf.float64, trainable=False)
      self.epochs_without_improvement = tf.Variable(0, dtype=tf.int64, trainable=False)
    weights = {m.name: m for m in models}
    self.last = _open_manager(
        tf.train.Checkpoint(optimizer=optimizer, epoch=self.epoch, best_value=self.best_value,
                            epochs_without_improvement=self.epochs_without_improvement,
                            random_generators=random_generator_states(models), **weights),
        os.path.join(self.directory, "last"), 2, self.remedy, self.notes)
    self.best = _open_manager(tf.train.Checkpoint(**weights),
                              os.path.join(self.directory, "best"), 1, self.remedy, self.notes)

  @property
  def remedy(self):
    """What to do about state that cannot be rebuilt."""
    return f"delete {self.directory} and rerun: the stage trains again"

  @property
  def done_path(self):
    return os.path.join(self.directory, "done.json")

  @property
  def finished_epochs(self):
    return int(self.epoch.numpy())

  def done(self, log=print):
    """The done marker's contents, or None while the stage is unfinished. A damaged marker is
    said on `log` and taken as absent: finish() writes it again from the checkpoints."""
    if not os.path.exists(self.done_path):
      return None
    again = "it is written again from the stage's checkpoints"
    try:
      done = records.read_json(self.done_path, again)
    except records.RecordError as error:
      log(str(error))
      return None
    if isinstance(done, dict) and all(key in done for key in DONE_KEYS):
      return done
    log(f"{self.done_path} is damaged (it lacks {', '.join(DONE_KEYS)}); {again}")
    return None

  def resume(self, log=print):
    """Restores the newest readable `last/` checkpoint, if any (a damaged newer one is said on
    `log`: its epochs run again, exactly); returns its path (None: a fresh start)."""
    if self.last.latest_checkpoint is None:
      return None
    prefix = _newest_readable(self.last, self.remedy, log)
    self._check_best(up_to_epoch=checkpoint_number(prefix))
    _restore(self.last.checkpoint, prefix, self.remedy)
    return prefix

  def wants_more(self, epochs, patience):
    """Whether another epoch should run (budget left and patience not exhausted)."""
    if self.finished_epochs >= epochs:
      return False
    return patience is None or int(self.epochs_without_improvement.numpy()) < patience

  def end_epoch(self, epoch, value):
    """Records a finished epoch whose selection metric is `value` (None: keep every epoch as
    the best, i.e. report the last); returns whether it is the best so far."""
    improved = value is None or value > float(self.best_value.numpy())
    if improved:
      if value is not None:
        self.best_value.assign(value)
      self.epochs_without_improvement.assign(0)
      self.best.save(checkpoint_number=epoch)
    else:
      self.epochs_without_improvement.assign_add(1)
    self.epoch.assign(epoch)
    # Saved last: if the process dies before this, the epoch is simply run again.
    self.last.save(checkpoint_number=epoch)
    return improved

  def kept_message(self, epoch):
    """What survives a failure during `epoch` (for error messages)."""
    if epoch <= 1 or not self.last.latest_checkpoint:
      return "no epoch of this stage had finished, so nothing of it is kept"
    return f"the last good checkpoint (epoch {epoch - 1}) is kept in {self.last.directory}"

  def finish(self):
    """Loads the best weights and writes the done marker; returns the marker's contents."""
    if self.best.latest_checkpoint is None:
      raise RuntimeError(f"{self.directory}: no epoch finished; nothing to restore")
    self._check_best()
    _restore(self.best.checkpoint, self.best.latest_checkpoint, self.remedy)
    best_value = float(self.best_value.numpy())
    done = {"epochs": self.finished_epochs,
            "best_epoch": checkpoint_number(self.best.latest_checkpoint),
            "best_value": best_value if math.isfinite(best_value) else None}
    records.write_json(self.done_path, done)
    return done

  def load_best(self):
    """Loads the best weights of a finished stage."""
    self._check_best()
    _restore(self.best.checkpoint, self.best.latest_checkpoint, self.remedy, partial=True)

  def _check_best(self, up_to_epoch=math.inf):
    """Raises RecordError if `best/` is unreadable; one newer than `up_to_epoch` is not checked:
    training that epoch again writes it again."""
    best = self.best.latest_checkpoint
    if best is None or checkpoint_number(best) > up_to_epoch:
      return
    problem = unreadable(best)
    if problem is not None:
      raise records.RecordError(f"checkpoint {best} is {problem}; {self.remedy}")
