"""Sweeps: one base config and a grid of dotted config keys, every point an ordinary run, on Ray.

``grid`` expands and validates the points (no Ray), ``bench`` names the Ray resources a point
needs and a machine offers (no Ray), ``remote`` runs one point on whichever node Ray picks and
ships its run directory back, ``command`` drives the sweep and keeps ``sweep.csv``. Only
``remote`` and ``command`` import ray (the ``[sweep]`` extra).
"""
