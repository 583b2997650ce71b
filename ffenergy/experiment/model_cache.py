"""Trained networks cached by the hash of everything that shapes them: the learner's network
and training-code version, the training data (by content), the model config and the seed.
A training in progress keeps a per-epoch checkpoint beside its cache entry (``<key>.partial.pt``),
so a run interrupted while training continues from the last finished epoch."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from typing import Any

import torch
from torch import nn

from ffenergy.config import ExperimentConfig
from ffenergy.data.base import Dataset
from ffenergy.data.splits import cache_key, cache_root
from ffenergy.learners.base import Learner
from ffenergy.learners.checkpoint import EpochCheckpoint

log = logging.getLogger(__name__)


def model_key(learner: type[Learner], cfg: ExperimentConfig, data: Dataset) -> str:
    """Changes whenever the trained weights could change; the training device is not part of it."""
    model = {k: v for k, v in dataclasses.asdict(cfg.model).items() if k not in ("device", "options")}
    model["options"] = cfg.model.options.get(learner.network_id, {})  # only this network's own options
    fingerprint = hashlib.sha256(data.x_train.tobytes() + data.y_train.tobytes()).hexdigest()
    return cache_key(
        learner.network_id, learner.training_version, fingerprint, data.label_value, model, cfg.seed, data.class_names
    )


def training_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device: cuda requested but torch sees no CUDA device; use auto or cpu")
    return requested


def load_or_train(
    learner: type[Learner], cfg: ExperimentConfig, data: Dataset, progress: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """The learner's network for this config: from the cache if present, else trained and cached."""
    key = model_key(learner, cfg, data)
    path = cache_root(os.environ.get("FFENERGY_MODEL_CACHE", "")) / "models" / f"{key}.pt"

    def fresh() -> nn.Module:
        torch.manual_seed(cfg.seed)  # the initial weights come from the seed, not from whatever ran before
        return learner.build([data.n_features, *cfg.model.hidden], data.n_classes, data.label_value)

    net = fresh()
    if path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(blob["state"])
        except Exception as exc:
            log.warning(
                "model cache file %s is damaged (%s: %s); removing it and training again",
                path,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            path.unlink(missing_ok=True)  # another run sharing the cache may have removed it already
            net = fresh()  # the failed load may have written into the first one
        else:
            net.eval()
            log.info("model %s: loaded from cache (%s)", learner.network_id, key)
            return net, {"cache": "hit", "cache_key": key, **blob["info"]}
    device = training_device(cfg.model.device)
    shape = "-".join(map(str, [data.n_features, *cfg.model.hidden]))
    log.info("model %s: training %s on %s", learner.network_id, shape, device)
    checkpoint = EpochCheckpoint(path.with_suffix(".partial.pt"))  # an interrupted training resumes from it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        info = learner.fit(net, data.x_train, data.y_train, cfg.model, cfg.seed, device, progress, checkpoint)
        net.to("cpu").eval()
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per writer: runs may share a cache
        torch.save({"state": net.state_dict(), "info": info}, tmp)
        tmp.replace(path)
    except PermissionError as exc:
        raise PermissionError(
            exc.errno,
            f"the model cache {path.parent} is not writable ({exc.strerror}); make it writable or point"
            " FFENERGY_CACHE at a writable folder",
            exc.filename,
        ) from None
    checkpoint.discard()
    return net, {"cache": "miss", "cache_key": key, **info}
