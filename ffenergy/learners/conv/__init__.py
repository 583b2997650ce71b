"""Convolutional early-exit learners: CwComp (forward-only, layer-local) and a backprop multi-exit CNN."""
