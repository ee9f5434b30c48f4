"""Nearest-neighbour search: the one exact, chunked top-k with exclusions (``exact.topk``), the per-pair rescoring
that makes its results independent of blocks and shards (``rescore``), and the optional FAISS backend
(``faiss_index``). Retrieval metrics, kNN and mining all search through here.

Layer 1: imports only the kernel.
"""

from anycl.moved import forward

from .exact import ranked_metrics, recall_at_k, retrieval_metrics, topk

__getattr__ = forward(__name__, __file__)  # the old module anycl.search's other names, deprecated

__all__ = ["ranked_metrics", "recall_at_k", "retrieval_metrics", "topk"]
