"""CaFo (Cascaded Forward, Zhao et al. 2023) as a learner: ``options`` (torch-free), ``learner``."""
