"""The training report: ``report.html`` and its figures. ``build`` (write_report: what goes on the page),
``health`` (the verdicts and their rules), ``examples`` (nearest neighbours before and after training, any
modality), ``neighbours`` (their section, previews through each adapter), ``embedding_map`` (the map coloured by
label, its table), ``figures`` (the PNGs of the curves over the steps), ``map_figures`` (the embedding map's
PNGs), ``plotting`` (what every figure shares), ``page`` (the HTML).

Layer 7: imports the kernel and layers 1-6.
"""

from anycl.moved import forward

from .build import write_report

__getattr__ = forward(__name__, __file__)  # the old module anycl.report's other names, deprecated

__all__ = ["write_report"]
