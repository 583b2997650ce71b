"""Datasets: loaders (one module each), splits and the ``Dataset`` hand-off; see ``registry``."""
