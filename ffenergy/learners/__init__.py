"""The learner registry: procedure name -> learner class (``ffenergy.learners.base.Learner``).

Adding a learner: one module with a ``Learner`` subclass, one ``LEARNERS.register`` line here
(or in a plug-in or test), and its tests; see docs/DESIGN.md "How to add".
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ffenergy.registry import Registry

if TYPE_CHECKING:
    from ffenergy.learners.base import Learner


def _check_learner(obj: object) -> None:
    # imported when a plug-in learner loads (it brings torch), so listing names keeps config torch-free
    Learner = importlib.import_module("ffenergy.learners.base").Learner
    if not (isinstance(obj, type) and issubclass(obj, Learner)):
        raise TypeError(f"{obj!r} is not a subclass of ffenergy.learners.base.Learner")


LEARNERS: Registry[type[Learner]] = Registry("learner", "ffenergy.learners", _check_learner)
FF_OPTIONS = "ffenergy.learners.ff.options:FFOptions"  # mp, mp-pruned and op share one network and its options
LEARNERS.register(
    "mp",
    "ffenergy.learners.ff.learner:FFMultiPass",
    "Forward-Forward, one pass per candidate label, goodness accumulated over layers",
    options=FF_OPTIONS,
)
LEARNERS.register(
    "mp-pruned",
    "ffenergy.learners.ff.learner:FFPrunedMultiPass",
    "Forward-Forward MP keeping only the best candidate labels after inference.prune_after",
    options=FF_OPTIONS,
)
LEARNERS.register(
    "op",
    "ffenergy.learners.ff.learner:FFOnePass",
    "Forward-Forward, one neutral-label pass, a softmax head per depth",
    options=FF_OPTIONS,
)
LEARNERS.register(
    "bp-exits",
    "ffenergy.learners.backprop:BackpropMultiExit",
    "backprop MLP with a linear exit head per depth, trained on the weighted sum of the exit losses",
    options="ffenergy.learners.backprop_options:BackpropOptions",
)
LEARNERS.register(
    "pepita",
    "ffenergy.learners.pepita:Pepita",
    "PEPITA-trained MLP (two forward passes, fixed random error feedback), exit heads trained afterwards",
    options="ffenergy.learners.pepita_options:PepitaOptions",
)
LEARNERS.register(
    "cafo",
    "ffenergy.learners.cafo.learner:Cafo",
    "CaFo: DFA-trained (or random) blocks, a locally trained predictor per block, predictions summed over blocks",
    options="ffenergy.learners.cafo.options:CafoOptions",
)
LEARNERS.register(
    "cwc",
    "ffenergy.learners.conv.cwc:ChannelwiseCompetitive",
    "CwComp: convolutional, layer-local channel-wise competitive blocks; exit k on block k's class goodness",
    options="ffenergy.learners.conv.options:CwcOptions",
)
LEARNERS.register(
    "bp-conv-exits",
    "ffenergy.learners.conv.learner:BackpropConvExits",
    "backprop CNN of cwc's blocks with a pooled linear exit head per block, trained end to end on the weighted exit losses",
    options="ffenergy.learners.conv.options:BpConvOptions",
)
