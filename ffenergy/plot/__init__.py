"""Figures and report.md from result directories (``ffenergy plot``); reads result files only.

The command lives in :mod:`ffenergy.plot.command` (``plot_command``, ``add_arguments``).
"""
