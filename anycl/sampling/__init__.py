"""Which rows share a batch: the sampler contract and registry (``base``), distinct items per batch
(``in_batch``), batches by label (``by_label``), re-mined hard negatives (``mined``), one column paired as
Contrastive Tension wants it (``contrastive_tension``), several data sets
(``multi_dataset``: batches interleaved, each from one data set; their rows are ``anycl.data.multi``), and
the factory that picks one for a run (``factory``). ``anycl.samplers`` is this package.

Layer 6: imports the kernel and layers 1-5.
"""

from anycl.moved import forward

from .base import SAMPLERS, Sampler, get, names, register
from .by_label import GroupByLabelSampler
from .contrastive_tension import ContrastiveTensionSampler
from .factory import sampler_and_builder
from .in_batch import InBatchSampler
from .mined import MinedNegativeSampler

__getattr__ = forward(__name__, __file__)  # the old module anycl.sampling's other names, deprecated

__all__ = [
    "ContrastiveTensionSampler",
    "GroupByLabelSampler",
    "InBatchSampler",
    "MinedNegativeSampler",
    "SAMPLERS",
    "Sampler",
    "get",
    "names",
    "register",
    "sampler_and_builder",
]
