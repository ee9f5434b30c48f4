"""Hard-negative mining: ``mine`` (``mine_hard_negatives``, ``mine_negative_ids``: the pass, step by step), its
options (``options``), the checked and de-duplicated queries and corpus (``pairs``), false-negative rules
(``rules``), each process's shard (``shard``), the guide's filter (``guide_filter``), the embedding cache
(``embed_cache``) and sentence-transformers' call of ``mine_hard_negatives`` (``st_call``).

Layer 5: imports the kernel and layers 1-4.
"""

from anycl.moved import forward

from .mine import mine_hard_negatives, mine_negative_ids
from .options import MiningOptions

__getattr__ = forward(__name__, __file__)  # the old module anycl.mining's other names, deprecated

__all__ = ["MiningOptions", "mine_hard_negatives", "mine_negative_ids"]
