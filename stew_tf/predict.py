"""Scores clips with an exported weak-modality model (no training code needed).

python -m stew_tf.predict --export_dir=W/export --input=FILE [--output=FILE.csv|.npy|.json]
python -m stew_tf.predict --export_dir=W/export --audio=FILE.wav|DIR [--output=trace.csv]
    [--plot=trace.png] [--server=http://host:8501/v1/models/NAME] [--segments=FILE.csv|DIR]

`--export_dir` is a version folder (`W/export/1`) or the base folder (`W/export`: the highest
numbered version in it is used, as TF Serving does). The feature dimension D is read from the
model's `serving_default` signature. Input formats:

  .npy  one [time, D] array (one clip) or a [clips, time, D] array (clips of equal length).
  .npz  either `features` [clips, time, D] with an optional bool `mask` [clips, time] (True on
        real segments, right-padded; values past a clip's end are ignored), or one [time, D]
        array per clip, under any names (clips may differ in length; the names are the ids).
  .csv  one row per segment, D numeric columns, an optional header row (a row without any
        number in it). If the header's first column is `clip_id`, that column groups rows into
        clips, in order of first appearance; otherwise the whole file is one clip.

Numbers may be ints or floats (cast to float32). Without --output, one line per clip is printed:
the clip id (or index), a tab, then its scores. With --output the scores are written as .csv
(columns clip_id, segment, score), .npy (float32 [clips, max time], NaN past each clip's end)
or .json (a list of {"clip_id": ..., "scores": [...]}). Bad input exits with status 2 and one
`error:` line on stderr that names the file and what was expected.

--audio (a WAV file, or a folder: each .wav in it) applies the export's feature recipe
(assets.extra/feature_recipe.json, written for models trained on --dataset=recordings). A model
of continuous labels scores one value per 40 ms frame: printed, or written with --output as CSV
(recording,time,score). A model of segment labels scores one value per segment (CSV
recording,start,end,score): the segments are the start,end rows (seconds) of --segments (a CSV
file; for a folder of WAV files, a folder of <recording>.csv), and without --segments each
recording is one segment. --plot draws each recording's trace. --server sends the same features
to a TF Serving REST endpoint instead of loading the model (the recipe still comes from
--export_dir).
"""

import dataclasses
import os
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from stew_tf import audio_features
from stew_tf import clip_files
from stew_tf import recording_scores
from stew_tf import serving_client
from stew_tf.clip_files import InputError

SIGNATURE = "serving_default"


@dataclasses.dataclass
class ServingModel:
  """A loaded SavedModel and its serving signature."""
  path: str
  loaded: object  # keeps the variables that the signature reads alive
  signature: object
  feature_dim: int

  def __call__(self, features, mask):
    return self.signature(features=tf.constant(features, tf.float32),
                          mask=tf.constant(mask, tf.bool))["scores"].numpy()


def _is_saved_model(path):
  return os.path.isfile(os.path.join(path, "saved_model.pb"))


def resolve_export_dir(path):
  """The SavedModel folder: `path` itself, or its highest numbered version folder."""
  if not os.path.isdir(path):
    raise InputError(f"{path}: no such folder; expected an export folder such as W/export "
                     "or W/export/1")
  if _is_saved_model(path):
    return path
  versions = [int(name) for name in os.listdir(path)
              if name.isdigit() and _is_saved_model(os.path.join(path, name))]
  if not versions:
    raise InputError(f"{path}: no SavedModel found; expected saved_model.pb in it or in a "
                     "numbered version folder under it (W/export/1)")
  return os.path.join(path, str(max(versions)))


def load_model(export_dir):
  """Loads the SavedModel of `export_dir` (see resolve_export_dir) and reads D."""
  path = resolve_export_dir(export_dir)
  try:
    loaded = tf.saved_model.load(path)
  except Exception as error:  # pylint: disable=broad-except
    # A corrupt, truncated or foreign SavedModel fails in many ways (protobuf, OS, TF errors);
    # each is the same answer for the user: this folder holds no usable model.
    reason = str(getattr(error, "message", error)).strip().splitlines()
    raise InputError(f"{path}: cannot be loaded as a SavedModel ({type(error).__name__}: "
                     f"{reason[0] if reason else 'no detail'}); expected a complete export "
                     "written by stew_tf") from None
  if SIGNATURE not in loaded.signatures:
    raise InputError(f"{path}: the SavedModel has no '{SIGNATURE}' signature; expected one "
                     "written by stew_tf.export")
  signature = loaded.signatures[SIGNATURE]
  _, specs = signature.structured_input_signature
  if set(specs) != {"features", "mask"}:
    raise InputError(f"{path}: signature '{SIGNATURE}' takes {sorted(specs)}; expected "
                     "['features', 'mask']")
  return ServingModel(path, loaded, signature, int(specs["features"].shape[-1]))


def score_clips(model, clips, batch_size=32):
  """Scores of each clip's real segments: a list of float32 [length] arrays."""
  scores = []
  lengths = clips.lengths
  for start in range(0, len(clips.ids), batch_size):
    stop = start + batch_size
    # Trimming to the longest clip of the batch saves work on the padding.
    time = int(lengths[start:stop].max())
    batch = model(clips.features[start:stop, :time], clips.mask[start:stop, :time])
    scores += [row[:length] for row, length in zip(batch, lengths[start:stop])]
  return scores


def predict(export_dir, input_path, output_path=None, batch_size=32, out=sys.stdout):
  """The whole command; raises InputError on bad input."""
  if output_path:
    clip_files.check_output(output_path)
  model = load_model(export_dir)
  clips = clip_files.load_clips(input_path, model.feature_dim)
  scores = score_clips(model, clips, batch_size)
  if output_path:
    clip_files.write_scores(output_path, clips.ids, scores)
  else:
    print("\n".join(clip_files.format_scores(clips.ids, scores)), file=out)
  return clips.ids, scores


def predict_audio(export_dir, audio_path, output_path=None, plot_path=None, server=None,
                  batch_size=32, out=sys.stdout, segments=None):
  """--audio: one Trace per recording, printed or written; raises InputError on bad input."""
  recording_scores.check_outputs(output_path, plot_path)
  path = resolve_export_dir(export_dir)
  try:
    recipe = audio_features.read_recipe(path)
  except audio_features.AudioError as error:
    raise InputError(str(error)) from None
  if segments is not None and recipe.mode != audio_features.SEGMENTS:
    raise InputError(f"--segments={segments}: the export scores every 40 ms frame (a model of "
                     "continuous labels); expected --segments only with a model of segment "
                     "labels")
  files = recording_scores.audio_files(audio_path)
  segment_files = recording_scores.segment_files(segments, audio_path, files)
  model = serving_client.RestModel(server) if server else load_model(path)
  traces = []
  for file, segment_file in zip(files, segment_files):
    times, ends, clips = recording_scores.recording_clips(file, recipe, segment_file)
    scores = np.concatenate(score_clips(model, clips, batch_size))
    traces.append(recording_scores.Trace(recording_scores.recording_name(file), times, scores,
                                         ends))
  if output_path:
    recording_scores.write_traces(output_path, traces)
  else:
    print("\n".join(recording_scores.format_traces(traces)), file=out)
  if plot_path:
    recording_scores.plot_traces(plot_path, traces)
  return traces


def _define_flags():
  # Defined only when run as a command: tests import this module beside stew_tf.config and
  # stew_tf.bench, whose --batch_size and --output would otherwise clash with these.
  flags.DEFINE_string("export_dir", None, "SavedModel version folder (W/export/1) or base "
                      "folder (W/export: its highest numbered version is used).")
  flags.DEFINE_string("input", None, "Clips to score: a .npy, .npz or .csv file.")
  flags.DEFINE_string("audio", None, "Recordings to score: a WAV file or a folder of them "
                      "(instead of --input; the export must hold a feature recipe).")
  flags.DEFINE_string("output", None, "Write the scores here (.csv, .npy or .json; --audio: "
                      ".csv) instead of printing them.")
  flags.DEFINE_string("plot", None, "--audio: draw the predicted traces into this image file.")
  flags.DEFINE_string("server", None, "--audio: a TF Serving REST model URL "
                      "(http://host:8501/v1/models/NAME) to send the features to instead of "
                      "loading the model.")
  flags.DEFINE_string("segments", None, "--audio with a model of segment labels: the segments "
                      "to score, one prediction each: a CSV file with start,end columns "
                      "(seconds), or for a folder of WAV files a folder of <recording>.csv. "
                      "Without it each recording is one segment.")
  flags.DEFINE_integer("batch_size", 32, "Clips per model call.", lower_bound=1)
  flags.mark_flags_as_required(["export_dir"])
  flags.register_multi_flags_validator(
      ["input", "audio"], lambda values: (values["input"] is None) != (values["audio"] is None),
      "pass exactly one of --input (feature files) and --audio (recordings)")
  flags.register_multi_flags_validator(
      ["audio", "server", "plot", "segments"],
      lambda values: values["audio"] or not (values["server"] or values["plot"]
                                             or values["segments"]),
      "--server, --plot and --segments apply to --audio only")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # TF's INFO lines would mix with the scores
  values = flags.FLAGS
  try:
    if values.audio:
      predict_audio(values.export_dir, values.audio, values.output, values.plot, values.server,
                    values.batch_size, segments=values.segments)
    else:
      predict(values.export_dir, values.input, values.output, values.batch_size)
  except InputError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
