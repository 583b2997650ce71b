"""Recordings of real meters on real boards: one ``Recording`` type, a reader per file format
(``FORMATS``), and replay devices that stream a recording through a live driver's code path.

A recording is samples (power, or energy per sample period) at a sample rate, the supply voltage,
and trigger windows as sample-index edges with their uncertainty. ``ffenergy import`` turns one into
a run directory of the result contract; ``replay`` feeds one to the INA226 and PPK2 drivers.
"""
