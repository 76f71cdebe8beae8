"""stew_tf: CM-StEW (cross-modal stronger-enhancing-weaker) in Keras 3 on TensorFlow 2."""

# Recorded in every run's record, teacher identity and results.json; bump it when a change alters
# trained models or the records' format.
__version__ = "0.6.0"
