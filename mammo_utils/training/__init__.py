"""Turn a manifest into a trained run directory: the image cache, augmentation, the tf.data pipeline, training."""
