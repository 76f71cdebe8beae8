"""stew_tf: CM-StEW (cross-modal stronger-enhancing-weaker) in Keras 3 on TensorFlow 2."""

# Recorded in every run's record and results.json; bump it when a change alters trained models.
__version__ = "0.5.0"
