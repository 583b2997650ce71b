"""Figures and report.md from result directories (``ffenergy plot``); reads result files only.

The command lives in :mod:`ffenergy.plot.command` (``plot_command``); this module stays light
so that ``ffenergy --help`` does not import matplotlib.
"""

FORMATS = ("png", "pdf", "svg")
