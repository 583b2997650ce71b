"""ffenergy: measure what early-exit Forward-Forward inference really saves in joules."""

__version__ = "0.3.0"
