"""The model: ``ContrastiveModel`` (``contrastive``), its towers (``tower``: adapter + encoder + head), the
build factory (``build``), the model folder (``folder``: save / load, JSON + safetensors; ``folder_read``: what a
load checks before it builds anything), the embedding path
(``embed``, ``embedding_ops``, ``quantization``), LoRA (``lora``) and sentence-transformers' names
(``st_names``).

Layer 4: imports the kernel and layers 1-3.
"""

from anycl.moved import forward

from .contrastive import ContrastiveModel, build_model, load
from .tower import Tower

__getattr__ = forward(__name__, __file__)  # the old module anycl.model's other names, deprecated

__all__ = ["ContrastiveModel", "Tower", "build_model", "load"]
