"""Dataset preparation for training: slicing, resampling, config and file lists, feature cache, dataset."""
