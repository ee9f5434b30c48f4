"""Where Accelerate steps: the ``Trainer`` (``trainer``; its epochs and steps: ``epoch_loop``), what it asks of
its sampler and callbacks (``contracts``), one step (``step``: model → embeddings → loss), its arguments (``args``),
GradCache (``gradcache``), the guide model (``guide``), checkpoints (``checkpoint``, ``checkpoint_find``,
``checkpoint_clear``), the accelerator and LR schedule (``accelerator``), the precision ``"auto"`` picks
(``precision``), the optimiser (``optimizer``), streamed epochs (``stream_steps``), the best model (``best``) and
the collapse watch (``collapse``).

Layer 6: imports the kernel and layers 1-5.
"""

from anycl.moved import forward

from .args import TrainingArgs
from .contracts import Callback
from .step import TrainingModule
from .trainer import Trainer

__getattr__ = forward(__name__, __file__)  # the old module anycl.training's other names, deprecated

__all__ = ["Callback", "Trainer", "TrainingArgs", "TrainingModule"]
