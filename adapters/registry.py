"""The modality-adapter registry: names → adapter classes (``anycl.adapters.get("text")``)."""

from anycl.registry import Registry

ADAPTERS = Registry("modality adapter", entry_point_group="anycl.adapters")
register = ADAPTERS.register


def get(name: str, **options):
    """Build the adapter registered as ``name`` with ``options``."""
    return ADAPTERS.get(name, **options)


def names():
    """Registered modality names."""
    return ADAPTERS.names()


def file_extensions(modality: str) -> tuple:
    """The file extensions a folder of ``modality`` items is read with (the registered adapter's)."""
    return tuple(getattr(ADAPTERS.lookup(modality), "file_extensions", ()))
