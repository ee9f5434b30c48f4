"""The training report: ``report.html`` and its figures (``build``, ``figures``, ``examples``).

Layer 7: imports the kernel and layers 1-6.
"""

from anycl.moved import forward

from .build import write_report

__getattr__ = forward(__name__, __file__)  # the old module anycl.report's other names, deprecated

__all__ = ["write_report"]
