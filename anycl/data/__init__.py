"""Where data enters: any input (Hugging Face data sets, lists, DataFrames, files, folders, streams) becomes
rows in one column convention (``anchor``, ``positive``, ``negative_k``, ``label``, ``score``), each item checked
against its column's spec; then rows become tensors (``batching``, ``views``).

Modules: ``open`` (a data-set spec → a data set), ``inputs`` (``to_rows``), ``rows``, ``column_map``,
``column_spec``, ``item_checks``, ``stream_rows``, ``tables``, ``prompts``, ``batching``, ``views``,
``multi`` (several data sets' rows).

Layer 1: imports only the kernel (``anycl``'s root modules).
"""

from anycl.moved import forward

from .inputs import to_rows
from .rows import Rows

__getattr__ = forward(__name__, __file__)  # the old module anycl.data's other names, deprecated

__all__ = ["Rows", "to_rows"]
