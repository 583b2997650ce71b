"""Trained networks cached by the hash of everything that shapes them (data, model, seed)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Callable

import torch

from ffenergy.config import ExperimentConfig
from ffenergy.data.base import Dataset
from ffenergy.data.splits import cache_key, cache_root
from ffenergy.ff.model import FFNetwork
from ffenergy.ff.train import TrainConfig, train


def model_key(cfg: ExperimentConfig, data: Dataset) -> str:
    """Changes whenever the trained weights could change: training data (by content, wherever it
    was read from), model hyper-parameters and seed; the training device is not part of it."""
    model = {k: v for k, v in dataclasses.asdict(cfg.model).items() if k != "device"}
    fingerprint = hashlib.sha256(data.x_train.tobytes() + data.y_train.tobytes()).hexdigest()
    return cache_key(fingerprint, data.label_value, model, cfg.seed, data.class_names)


def training_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device: cuda requested but torch sees no CUDA device; use auto or cpu")
    return requested


def load_or_train(
    cfg: ExperimentConfig, data: Dataset, progress: bool = True, log: Callable[[str], None] = print
) -> tuple[FFNetwork, dict[str, Any]]:
    """The network for this config: from the cache if present, else trained and cached."""
    key = model_key(cfg, data)
    path = cache_root(os.environ.get("FFENERGY_MODEL_CACHE", "")) / "models" / f"{key}.pt"
    torch.manual_seed(cfg.seed)  # the initial weights come from the seed, not from whatever ran before
    net = FFNetwork([data.n_features] + list(cfg.model.hidden), data.n_classes, data.label_value)
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(blob["state"])
        net.eval()
        log(f"model: loaded from cache ({key})")
        return net, {"cache": "hit", "cache_key": key, **blob["info"]}
    device = training_device(cfg.model.device)
    train_cfg = TrainConfig(**{f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(TrainConfig)})
    log(f"model: training {'-'.join(map(str, net.dims))} on {device} for {train_cfg.epochs} epochs")
    result = train(net, data.x_train, data.y_train, train_cfg, cfg.seed, device, progress)
    net.to("cpu")
    info = {"train_seconds": round(result.seconds, 2), "train_device": device,
            "ff_loss": result.ff_loss, "head_loss": result.head_loss}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state": net.state_dict(), "info": info}, tmp)
    tmp.replace(path)
    return net, {"cache": "miss", "cache_key": key, **info}
