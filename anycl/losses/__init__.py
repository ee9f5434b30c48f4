"""The loss registry. ``anycl.losses.get("infonce", temperature=0.05)(anchor_emb, positive_emb)``.

One file per loss family; :mod:`anycl.losses.base` holds the base class, ``Temperature`` and the shared
shape checks, :mod:`anycl.losses.registry` the name → class table; wrappers of other losses:
:mod:`anycl.losses.matryoshka` (nested widths) and :mod:`anycl.losses.multi_dataset` (one loss per data set).
Every loss takes embeddings only:
``forward(anchor (B, D), positive (B, D), negative=None (B, K, D), labels=None (B,))``.
sentence-transformers' loss class names (``loss="MultipleNegativesRankingLoss"``) are read through the one
table of :mod:`anycl.losses.st_names`. See ``docs/losses.md`` for the list, the options and when to use which.
"""

# kept in this order: the built-in losses register in it
# isort: off
from .registry import LOSSES, ContrastiveLoss, FunctionLoss, get, names, register
from . import infonce as _infonce  # noqa: F401  (infonce / mnrl / ntxent, simclr)
from . import triplet as _triplet  # noqa: F401  (triplet)
from . import dcl as _dcl  # noqa: F401  (dcl, dclw)
from . import supcon as _supcon  # noqa: F401  (supcon)
from . import siglip as _siglip  # noqa: F401  (siglip)
from . import negative_free as _negative_free  # noqa: F401  (byol, simsiam)
from . import vicreg as _vicreg  # noqa: F401  (vicreg)
from . import barlow as _barlow  # noqa: F401  (barlow_twins)
from . import queue as _queue  # noqa: F401  (moco)
from . import graded as _graded  # noqa: F401  (cosent, angle, cosine_mse, margin_mse)
from . import distill as _distill  # noqa: F401  (distill_mse, distill_kl)
from . import distill_views as _distill_views  # noqa: F401  (distill)
from . import multiview as _multiview  # noqa: F401  (multiview_infonce)
from . import dino as _dino  # noqa: F401  (dino)
from . import nnclr as _nnclr  # noqa: F401  (nnclr)
from . import labelled_pairs as _labelled_pairs  # noqa: F401  (contrastive, online_contrastive)
from . import mega_batch as _mega_batch  # noqa: F401  (mega_batch_margin)
from . import softmax as _softmax  # noqa: F401  (softmax)
from . import contrastive_tension as _contrastive_tension  # noqa: F401  (contrastive_tension[_in_batch])
from . import debiased as _debiased  # noqa: F401  (debiased, hcl)

# isort: on
from .barlow import BarlowTwins
from .contrastive_tension import ContrastiveTension, ContrastiveTensionInBatch
from .dcl import DCL, WeightedDCL
from .debiased import DebiasedInfoNCE
from .dino import DINO
from .distill import DistillKLDiv, DistillMSE
from .distill_views import ViewDistill
from .graded import AnglE, CoSENT, CosineMSE, MarginMSE
from .infonce import InfoNCE, NTXent2N, info_nce
from .labelled_pairs import OnlineContrastive, PairContrastive
from .matryoshka import MatryoshkaLoss
from .mega_batch import MegaBatchMargin
from .multiview import MultiViewInfoNCE
from .negative_free import BYOL, SimSiam
from .nnclr import NNCLR
from .queue import MemoryQueue, QueueLoss
from .siglip import SigLIP
from .softmax import SoftmaxLoss
from .supcon import SupCon
from .triplet import TripletMargin
from .vicreg import VICReg

__all__ = [
    "LOSSES",
    "ContrastiveLoss",
    "FunctionLoss",
    "get",
    "names",
    "register",
    "InfoNCE",
    "NTXent2N",
    "info_nce",
    "TripletMargin",
    "DCL",
    "DebiasedInfoNCE",
    "WeightedDCL",
    "SupCon",
    "SigLIP",
    "BYOL",
    "SimSiam",
    "VICReg",
    "BarlowTwins",
    "MemoryQueue",
    "QueueLoss",
    "MatryoshkaLoss",
    "CoSENT",
    "AnglE",
    "CosineMSE",
    "MarginMSE",
    "DistillMSE",
    "ViewDistill",
    "MultiViewInfoNCE",
    "DINO",
    "NNCLR",
    "PairContrastive",
    "OnlineContrastive",
    "MegaBatchMargin",
    "SoftmaxLoss",
    "DistillKLDiv",
    "ContrastiveTension",
    "ContrastiveTensionInBatch",
]
