"""Fine-tune a sentence-embedding model with mined (and re-mined) hard negatives — offline.

Run from the repository root: ``PYTHONPATH=. python examples/text_hard_negatives.py``
Uses the packaged all-MiniLM-L6-v2 and a few pairs made up here; takes a minute or two on a CPU.
"""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import anycl  # noqa: E402
from anycl.mining.mine import mine_hard_negatives  # noqa: E402

topics = {
    "python": "a programming language with significant indentation",
    "tcp": "a transport protocol giving reliable, ordered byte streams",
    "udp": "a transport protocol sending datagrams without delivery guarantees",
    "cache": "a small fast memory holding recently used data",
    "mutex": "a lock that lets one thread at a time enter a critical section",
    "semaphore": "a counter that limits how many threads use a resource",
    "compiler": "a program translating source code into machine code",
    "interpreter": "a program executing source code statement by statement",
}
pairs = [
    {"anchor": f"what is {name}? ({i})", "positive": f"{name}: {text} (note {i})"}
    for i in range(3)
    for name, text in topics.items()
]
dev = [{"anchor": f"explain {name}", "positive": f"{name}: {text} (note 0)"} for name, text in topics.items()]

# 1. Mining on its own, with the zero-shot model: statistics are printed.
base = anycl.api.build_model({"anchor": "text", "positive": "text", "negative": "text"})
mined, stats = mine_hard_negatives(base, pairs, num_negatives=2, relative_margin=0.05, range_max=20)
print(mined[0])

# 2. Training with negatives mined before training and re-mined every 2 steps; keep the best checkpoint.
model = anycl.fit(
    pairs,
    modality="text",
    sampler="mined",
    sampler_options={"num_negatives": 1, "refresh_every": 2, "group_by_length": 2},
    adapter_options={"max_seq_length": 32},
    batch_size=8,
    epochs=1,
    eval_dataset=dev,
    eval_every=1,
    keep_best="ndcg@10",
    progress=False,
    log_with=None,
)
print("evaluations:", [round(e["ndcg@10"], 3) for e in model.trainer.eval_history], "best:", model.info["best"])

# 3. Export to the sentence-transformers format.
with tempfile.TemporaryDirectory() as d:
    path = model.export_sentence_transformers(os.path.join(d, "st"))
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(path, device="cpu")
    print("sentence-transformers embedding shape:", tuple(st.encode(["what is tcp?"]).shape))
