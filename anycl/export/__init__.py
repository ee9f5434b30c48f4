"""The model in other formats: the model card (``card``), ONNX (``to_onnx``) and sentence-transformers.

Layer 3: imports the kernel and layers 1-2 (``data``, ``search``, ``options``, ``losses``, ``adapters``).
"""
