"""Learner-specific settings: model.options.<network_id>, validated by the learner."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ffenergy.config import parse_config
from ffenergy.learners.base import LearnerOptionsError, learner_options


@dataclass
class ToyOptions:
    f_scale: float = 0.05
    steps: int = 2

    def validate(self) -> None:
        if self.steps < 1:
            raise LearnerOptionsError(f"model.options.toy.steps: invalid value {self.steps!r}")


def test_options_come_from_their_network_id_with_defaults_for_the_rest():
    model = parse_config({"model": {"options": {"toy": {"f_scale": 0.5}, "other": {"steps": 9}}}}).model
    assert learner_options(ToyOptions, model, "toy") == ToyOptions(f_scale=0.5, steps=2)
    assert learner_options(ToyOptions, model, "absent") == ToyOptions()


def test_unknown_keys_name_the_field_and_the_allowed_ones():
    model = parse_config({"model": {"options": {"toy": {"fscale": 0.5}}}}).model
    with pytest.raises(LearnerOptionsError, match=r"model\.options\.toy\.fscale: unknown key; allowed: f_scale, steps"):
        learner_options(ToyOptions, model, "toy")


def test_options_are_validated_when_built():
    model = parse_config({"model": {"options": {"toy": {"steps": 0}}}}).model
    with pytest.raises(LearnerOptionsError, match=r"model\.options\.toy\.steps: invalid value 0"):
        learner_options(ToyOptions, model, "toy")


def test_pruned_mp_that_keeps_every_class_is_refused_before_training():
    from ffenergy.config import InferenceConfig
    from ffenergy.learners import LEARNERS

    LEARNERS.get("mp-pruned").check(InferenceConfig(prune_keep=9), n_classes=10)  # fine
    with pytest.raises(LearnerOptionsError, match=r"inference.prune_keep: 10 keeps all 10 classes.*use 2\.\.9"):
        LEARNERS.get("mp-pruned").check(InferenceConfig(prune_keep=10), n_classes=10)
    LEARNERS.get("mp").check(InferenceConfig(prune_keep=10), n_classes=10)  # unpruned MP does not prune
