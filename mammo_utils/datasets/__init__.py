"""Data set loaders, each returning the manifest table (:mod:`~mammo_utils.datasets.schema`); patient splits;
the data figures.

:func:`mammo_utils.datasets.catalog.load` is what the notebooks call with their ``dataset`` / ``data_dir`` parameters.
"""
