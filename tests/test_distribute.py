"""tf.distribute: two CPU replicas train exactly like one device for the same global batch."""

import json
import subprocess
import sys
import textwrap

from tests.helpers import REPO_ROOT

# Runs in a fresh process: logical devices must be configured before TensorFlow starts.
_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from stew_tf import data, models, train, train_step

    DIMS = {"text": 6, "audio": 5}

    def split():
      rng = np.random.default_rng(0)
      examples = []
      for _ in range(16):
        # Enough rows per global batch (> the 100 latent dims) for well-conditioned covariances.
        length = int(rng.integers(15, 31))
        text = rng.normal(size=(length, 6)).astype(np.float32)
        audio = (text[:, :5] + rng.normal(size=(length, 5))).astype(np.float32)
        examples.append({"features": {"text": text, "audio": audio},
                         "labels": (text[:, 0] > 0).astype(np.float32), "length": length})
      ds = tf.data.Dataset.from_generator(lambda: iter(examples), output_signature={
          "features": {m: tf.TensorSpec([None, d], tf.float32) for m, d in DIMS.items()},
          "labels": tf.TensorSpec([None], tf.float32), "length": tf.TensorSpec([], tf.int32)})
      return data.Split(ds.cache(), 16, tuple(DIMS), batch_size=8)

    def losses(strategy, workdir):
      keras.utils.set_random_seed(0)
      with strategy.scope():
        norm = lambda d: (np.zeros(d), np.ones(d))
        teacher = models.build_encoder(6, 1, 0.0, *norm(6), "strong")
        stage = train_step.Stage(
            "stage2", "audio", models.build_encoder(5, 1, 0.0, *norm(5), "weak"),
            models.build_classifier(models.LATENT_DIM, "classification", "weak", dropout=0.0),
            "classification", alignment=True, translation=True,
            strong=(train_step.StrongTerms(
                "text", teacher=teacher,
                decoder=models.build_decoder(models.LATENT_DIM, 6, 8, 1, "weak"),
                normalizer=teacher.get_layer("strong_normalize"), alpha=0.5, beta=1.0),))
        # Plain SGD: Adam's normalisation would blow float rounding up into visible drift.
        trainer = train.StageTrainer(stage, DIMS, 1e-3, workdir, seed=0, epochs=1, patience=1,
                                     strategy=strategy,
                                     optimizer=keras.optimizers.SGD(learning_rate=0.01))
      steps = trainer.steps
      out = []
      for _ in range(2):
        for batch in steps.distribute(split().batches()):
          out.append({k: float(v) for k, v in steps.train_step(batch).items()})
      return out, strategy.num_replicas_in_sync

    one, n1 = losses(tf.distribute.get_strategy(), "/tmp/unused_a")
    two, n2 = losses(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), "/tmp/unused_b")
    print(json.dumps({"one": one, "two": two, "replicas": [n1, n2]}))
""")


def test_mirrored_on_two_replicas_matches_one_device():
  result = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600,
                          env={"PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                               "PATH": "/usr/bin:/bin"})
  assert result.returncode == 0, result.stderr[-4000:]
  output = json.loads(result.stdout.strip().splitlines()[-1])
  assert output["replicas"] == [1, 2]
  assert len(output["one"]) == 4
  # Step 2 compares the weights after one update, where a wrong cross-replica gradient shows at
  # once. Later steps get a looser bound: DCCA's inverse square roots amplify float rounding (the
  # reduction order differs between one and two replicas, and with the threads of a busy CPU) by
  # about 10x per step.
  for step, (step_one, step_two) in enumerate(zip(output["one"][:3], output["two"][:3])):
    assert set(step_one) == {"prediction", "dcca", "mae", "total"}
    tolerance = 1e-4 if step < 2 else 1e-3
    for term in step_one:
      assert abs(step_one[term] - step_two[term]) <= tolerance * max(1.0, abs(step_one[term])), (
          step, term, step_one, step_two)
