"""Custom Keras layers of the CM-StEW encoder."""
