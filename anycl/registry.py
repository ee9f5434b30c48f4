"""A small name → factory table, shared by losses, adapters and samplers.

Each registry is an instance of :class:`Registry`; its ``register`` decorator adds a class or function
under one or more names, ``get(name, **kwargs)`` builds one, ``names()`` lists what is there.
Installed plugins are found through a Python entry-point group (for example ``anycl.adapters``): each
entry point names a module or object that registers itself when loaded.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any, Callable, Dict, Iterable, List, Optional

from .errors import UnknownNameError, did_you_mean


class Registry:
    """Names to factories.

    >>> things = Registry("thing")
    >>> @things.register("double")
    ... def double(x=1):
    ...     return 2 * x
    >>> things.get("double", x=3)
    6
    """

    def __init__(self, kind: str, entry_point_group: Optional[str] = None):
        self.kind = kind
        self.plural = kind + ("es" if kind.endswith("s") else "s")
        self.entry_point_group = entry_point_group
        self._table: Dict[str, Callable[..., Any]] = {}
        self._plugins_loaded = entry_point_group is None

    @staticmethod
    def _norm(name: str) -> str:
        return name.strip().lower().replace("-", "_")

    def register(self, name: str, *aliases: str, override: bool = False):
        """Decorator: add ``obj`` under ``name`` (and ``aliases``).

        Registering a name twice is an error unless ``override=True``: a silent replacement would
        change what existing configs mean.
        """

        def deco(obj):
            for n in (name, *aliases):
                key = self._norm(n)
                if key in self._table and self._table[key] is not obj and not override:
                    raise ValueError(
                        f"{self.kind} {n!r} is already registered (by {self._table[key]!r}); "
                        f"pass override=True to replace it"
                    )
                self._table[key] = obj
            if not hasattr(obj, "registry_name"):
                try:
                    obj.registry_name = self._norm(name)
                except (AttributeError, TypeError):
                    pass
            return obj

        return deco

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.entry_point_group or ""):  # no group: _plugins_loaded is already True
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break anycl itself
                warnings.warn(f"could not load {self.kind} plugin {ep.name!r} ({ep.value}): {exc}", stacklevel=2)
                continue
            if callable(obj) and self._norm(ep.name) not in self._table:
                self._table[self._norm(ep.name)] = obj

    def names(self) -> List[str]:
        """The registered names, sorted."""
        self._load_plugins()
        return sorted(self._table)

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return self._norm(name) in self._table

    def lookup(self, name: str) -> Callable[..., Any]:
        """The registered class or function itself, not an instance."""
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        self._load_plugins()
        key = self._norm(name)
        if key not in self._table:
            hint = did_you_mean(key, self.names(), cutoff=0.6)  # names are short: 'sst' is 0.67 from 'sts'
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint}; registered {self.plural}: {', '.join(self.names())}"
            )
        return self._table[key]

    def get(self, name: str, **kwargs) -> Any:
        """Build the registered object ``name`` with ``kwargs``."""
        return self.lookup(name)(**kwargs)

    def items(self) -> Iterable:
        self._load_plugins()
        return sorted(self._table.items())
