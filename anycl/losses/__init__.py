"""The loss registry. ``anycl.losses.get("infonce", temperature=0.05)(anchor_emb, positive_emb)``.

One file per loss family; :mod:`anycl.losses.registry` holds the name → class table.
"""
from .registry import LOSSES, ContrastiveLoss, FunctionLoss, get, names, register
from . import infonce as _infonce  # noqa: F401  (registers infonce / ntxent / mnrl)
from . import triplet as _triplet  # noqa: F401  (registers triplet)
from .infonce import InfoNCE
from .triplet import TripletMargin

__all__ = ["LOSSES", "ContrastiveLoss", "FunctionLoss", "get", "names", "register", "InfoNCE", "TripletMargin"]
