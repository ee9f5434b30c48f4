"""What ``anycl.fit`` does, stage by stage: ``data`` (modalities, rows), ``items`` (adapter options chosen from a
sample of the items; unreadable files found before training), ``loss`` and ``loss_data`` (the loss and what it
needs from the data), ``checks`` (options that need each other, training arguments), ``setup`` (prompts, towers,
samplers, evaluators, callbacks), ``memory`` (a step's memory against what is free), ``resume`` (a resume
continues the run that wrote the checkpoint), ``recipe`` (the defaults that follow the data: self-supervised
runs' step budget and full batches; the run's recipe in words) and ``record`` (what the run leaves behind).
Not named ``fit``, which would hide the function ``anycl.fit``.

Layer 8: imports the kernel and layers 1-7.
"""
