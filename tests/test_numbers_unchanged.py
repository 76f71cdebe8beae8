"""Trained numbers do not change with the code's structure: a 2-epoch run of every method on the
synthetic data (0.5.0's default, now `stew_synthetic/mosi_like`; and of CMU-MOSI's cm_stew, when
its files are here) gives the confusion matrices and kept epochs that stew_tf 0.5.0, before the
config tree and the task table, gave (tests/golden/short_runs_0.5.0.json, written from that
version's results.json files)."""

import json

import pytest

from tests.helpers import REPO_ROOT
from tests.helpers import SHARED_DATA
from tests.helpers import run_mains

GOLDEN = json.loads((REPO_ROOT / "tests" / "golden" / "short_runs_0.5.0.json").read_text())
MOSI_DIR = SHARED_DATA / "mosi"
RUNS = {
    **{method: ["--dataset=stew_synthetic/mosi_like", f"--method={method}"]
       for method in ("cm_stew", "no_lfa", "no_decoder", "enc_cls", "cls_only")},
    "mosi_cm_stew": [f"--flagfile={REPO_ROOT / 'flags' / 'mosi_text_to_audio_cm_stew.cfg'}",
                     f"--manual_dir={MOSI_DIR}"],
}


def _confusions(results):
  return {model: {split: results[model][split]["confusion"] for split in ("validation", "test")}
          for model in ("weak_model", "strong_model") if results[model]}


def _mosi_missing():
  return not (MOSI_DIR / "labels").is_dir()


@pytest.fixture(scope="module")
def short_runs(tfds_dir, tmp_path_factory):
  """{name: (CompletedProcess, workdir)} of every run of RUNS (but CMU-MOSI's without its files),
  two at a time (helpers.run_mains). The first wave prepares the data: cm_stew the synthetic one
  and, beside it, mosi_cm_stew CMU-MOSI's; the other runs then share them, and no_decoder reuses
  cm_stew's finished teacher, as in 0.5.0."""
  # One teacher cache for the module: cm_stew and no_decoder share their teacher.
  root = tmp_path_factory.getbasetemp() / "short_runs"
  names = [name for name in RUNS if not (name.startswith("mosi") and _mosi_missing())]
  first = ["cm_stew", *(name for name in names if name.startswith("mosi"))]
  waves = [first, [name for name in names if name not in first]]

  def command(name):
    return [*RUNS[name], "--epochs=2", f"--workdir={root / name}", f"--data_dir={tfds_dir}",
            f"--teacher_cache={root / 'teachers'}"]
  runs = {}
  for wave in waves:
    runs.update(zip(wave, zip(run_mains(*map(command, wave)), (root / name for name in wave))))
  return runs


@pytest.mark.parametrize("name", list(RUNS))
def test_a_short_run_gives_the_numbers_of_0_5_0(name, request):
  if name.startswith("mosi") and _mosi_missing():
    pytest.skip(f"CMU-MOSI files not found at {MOSI_DIR}")
  result, workdir = request.getfixturevalue("short_runs")[name]
  assert result.returncode == 0, result.stderr[-3000:]
  results = json.loads((workdir / "results.json").read_text())
  golden = GOLDEN[name]
  assert results["kept_epoch"] == golden["kept_epoch"]
  assert _confusions(results) == {model: golden[model] for model in ("weak_model", "strong_model")
                                  if model in golden}
