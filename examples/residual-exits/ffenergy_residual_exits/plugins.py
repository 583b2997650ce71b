"""What the entry points name: one ``Plugin`` per thing, each the path of its object (imported
only when a run uses it), a one-line summary and the facts ffenergy lists without importing it."""

from ffenergy.registry import Plugin

learner = Plugin(
    "ffenergy_residual_exits.network:ResidualExits",
    "a residual MLP with a softmax exit head after every stage (this package's example)",
)
meter = Plugin(
    "ffenergy_residual_exits.csv_meter:CsvLogMeter",
    "a bench's power log, appended to a CSV file (t_s, power_w)",
    {"provenance": "measured", "host": True},  # host: the config's `meter` may name it
)
