"""What loading a Hugging Face ``transformers`` model needs, shared by the pretrained audio encoders
(:mod:`.audio_pretrained`) and the named image backbones (:mod:`.image_pretrained`)."""

from __future__ import annotations

import contextlib

from anycl.progress import quiet_library_bars


@contextlib.contextmanager
def quiet_transformers():
    """No progress bars, and no load report (a head's weights a checkpoint lacks or has to spare): what an
    encoder lacks is checked, and said, by its loader."""
    from transformers.utils import logging as tlog  # lazy: transformers: only while a checkpoint loads

    was = tlog.get_verbosity()
    tlog.set_verbosity_error()
    try:
        with quiet_library_bars():
            yield
    finally:
        tlog.set_verbosity(was)


@contextlib.contextmanager
def no_init():
    """A model built from its config without initialising its weights (they are loaded next)."""
    try:
        from transformers.initialization import no_init_weights  # lazy: transformers 5 (weights load next)
    except ImportError:  # pragma: no cover - older transformers: random init, then overwritten
        yield
        return
    with no_init_weights():
        yield
