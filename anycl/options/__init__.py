"""What a run is asked to do: ``FitConfig`` and its typed fields (``fit_config``, ``fields``), their checks
(``validation``), the named recipes (``recipes``) and the run-config file ``config.yaml`` (``run_config``).

Layer 2: imports the kernel, ``data`` and ``search``.
"""
