"""Read a mammogram from any supported file and standardize it: the record, the readers, segmentation,
standardization."""
