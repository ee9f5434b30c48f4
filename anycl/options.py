"""The names of ``anycl.fit``'s options and what each means, now held by :class:`anycl.fit_config.FitConfig`
(this module keeps the old import path)."""
from .fit_config import FIT_OPTIONS  # noqa: F401
