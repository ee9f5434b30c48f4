"""A big contrastive batch on a small memory budget, with checkpoints a restart resumes from (offline).

Run it twice: the second run finds the finished checkpoints and continues from the newest one (here it
is already done, so it only re-saves the model). Kill it mid-way (Ctrl-C, or kill -9) and run it again
to see a resume. Launch it on several processes with `accelerate launch --multi_gpu --num_processes 2
examples/large_batch_and_resume.py`: negatives then come from both processes.
"""

import anycl
from anycl.distributed import exit_process

topics = [
    "cats",
    "rivers",
    "engines",
    "bread",
    "stars",
    "violins",
    "glaciers",
    "chess",
    "tides",
    "ferns",
    "comets",
    "kilns",
    "owls",
    "lathes",
    "dunes",
    "harps",
]
pairs = [
    {"anchor": f"what do we know about {t}? (question {i})", "positive": f"facts on {t}, part {i}"}
    for i in range(4)
    for t in topics
]

model = anycl.fit(
    pairs,
    modality="text",
    batch_size=32,  # 32 pairs contrasted at once ...
    gradcache_mini_batch=8,  # ... embedded 8 at a time (GradCache: same gradients, less memory)
    epochs=2,
    adapter_options={"max_seq_length": 32},
    output_dir="runs/large_batch",
    checkpoint_every=1,
    resume_from="latest",
)
print("steps:", model.trainer.global_step, "embedding:", tuple(model.encode(["what do we know about owls?"]).shape))
exit_process()  # launched on CPU: ends without the teardown that gloo's threads can abort (docs/scale.md)
