"""TFDS builders of stew_tf, imported as `stew_datasets` by `stew_tf.tfds_builders` (never as `datasets`)."""
