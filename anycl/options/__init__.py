"""What a run is asked to do: ``FitConfig`` and its typed fields (``fit_config``, ``fields``), their checks
(``validation``), the named recipes (``recipes``), the run-config file ``config.yaml`` (``run_config``) and
transformers' trainer argument names read as fit's options (``trainer_names``).

Layer 2: imports the kernel, ``data`` and ``search``.
"""
