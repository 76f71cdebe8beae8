"""stew_tf: CM-StEW (cross-modal stronger-enhancing-weaker) in Keras 3 on TensorFlow 2."""
