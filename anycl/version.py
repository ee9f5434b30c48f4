"""anycl's version (its own module, so modules that print it need not import the package's __init__)."""

__version__ = "0.1.0"
