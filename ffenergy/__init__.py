"""ffenergy: measure what early-exit Forward-Forward inference really saves in joules."""

# 0.3.0: ffenergy import, recordings and replay devices, gross/net columns; one definition of the result
# rows, the runner's stages and the measurement method (CHANGELOG.md)
__version__ = "0.3.0"
