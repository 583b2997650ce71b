"""The model stage: one learner per procedure, its network trained or loaded from the cache; procedures
whose learners share a network train it once. Every network goes into model.pt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ffenergy.config import ExperimentConfig
from ffenergy.data.base import Dataset
from ffenergy.experiment.model_cache import load_or_train
from ffenergy.experiment.procedure import RunError
from ffenergy.learners import LEARNERS
from ffenergy.learners.base import Learner, LearnerOptionsError


def learners(
    cfg: ExperimentConfig, data: Dataset, model_path: Path, progress: bool
) -> tuple[list[Learner], dict[str, Any]]:
    """The learners of ``cfg.inference.procedures`` and the manifest's ``model`` entry."""
    names = cfg.inference.procedures
    try:
        for name in names:  # every check before any training
            LEARNERS.get(name).check(cfg.inference, data.n_classes)
        networks: dict[str, nn.Module] = {}
        infos: dict[str, Any] = {}
        out = []
        for name in names:
            cls = LEARNERS.get(name)
            if cls.network_id not in networks:
                networks[cls.network_id], infos[cls.network_id] = load_or_train(cls, cfg, data, progress=progress)
            out.append(cls(name, networks[cls.network_id], cfg.inference))
    except LearnerOptionsError as exc:
        raise RunError(f"{exc} (in {name}'s config)") from None
    torch.save({"networks": {key: net.state_dict() for key, net in networks.items()}}, model_path)
    return out, {"dims": out[0].dims, "networks": infos}
