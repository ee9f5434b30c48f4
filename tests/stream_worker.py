"""Streamed training under ``accelerate launch --num_processes 2`` (run by tests/test_streaming.py):
``python tests/stream_worker.py OUT`` trains on each stream of :data:`STREAMS` and writes, per process,
the row ids (labels) of every batch it stepped on, epoch by epoch, and the trainer's ``stream_epochs``."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from toy_modality import toy_rows  # noqa: E402  (registers the toyvec modality)

BATCH = 4


def id_rows(n: int) -> list:
    """``n`` toy (anchor, positive) rows whose ``label`` is the row's id (unique: a label per row)."""
    rows = toy_rows(n, seed=3)
    for i, r in enumerate(rows):
        r["label"] = i
    return rows


def hf_stream(sizes):
    """A Hugging Face IterableDataset with one shard per entry of ``sizes`` (rows numbered across shards)."""
    import datasets

    rows = id_rows(sum(sizes))
    starts = [sum(sizes[:k]) for k in range(len(sizes))]

    def gen(shards):
        for k in shards:
            yield from rows[starts[k] : starts[k] + sizes[k]]

    return datasets.IterableDataset.from_generator(gen, gen_kwargs={"shards": list(range(len(sizes)))})


def generator_stream(n: int):
    rows = id_rows(n)

    def rows_of_the_stream():  # a generator function: read anew each epoch
        yield from rows

    return rows_of_the_stream


# name → (data, fit options, rows in all)
STREAMS = {
    # 4 equal shards over 2 processes: split by whole shards (2 each)
    "hf_shards_divisible": (lambda: hf_stream([6, 6, 6, 6]), dict(epochs=2), 24),
    # 3 shards over 2 processes: split by examples (every 2nd row)
    "hf_shards_not_divisible": (lambda: hf_stream([8, 8, 8]), dict(epochs=1), 24),
    # a plain Python generator function, round-robin by row index, 2 epochs
    "generator": (lambda: generator_stream(24), dict(epochs=2), 24),
    # 19 rows, no shuffle: process 0 gets rows 0, 2, …, 18 (batches of 4, 4, 2), process 1 rows 1, …, 17
    # (4, 4, and 1 row: below min_batch_size); both step twice, rows 16, 17, 18 go untrained
    "generator_uneven": (lambda: generator_stream(19), dict(epochs=1, sampler_options={"shuffle": False}), 19),
    # 2 shards of 12 and 6 rows, no shuffle: process 0 has 3 batches, process 1 two; 4 rows of process 0 untrained
    "hf_shards_uneven": (lambda: hf_stream([12, 6]), dict(epochs=1, sampler_options={"shuffle": False}), 18),
}


def run(name: str) -> dict:
    import anycl
    from anycl.training.trainer import Trainer

    make, options, _ = STREAMS[name]
    seen = []
    optimise = Trainer._optimise

    def recording(self, acc, batch, *a, **k):  # the rows of every batch this process steps on
        seen.append({"epoch": self.epoch, "ids": batch["labels"].tolist()})
        return optimise(self, acc, batch, *a, **k)

    Trainer._optimise = recording
    try:
        options = dict(options)
        options.setdefault("sampler_options", {})
        options["sampler_options"] = {"shuffle_buffer": 5, **options["sampler_options"]}
        model = anycl.fit(
            make(),
            modality="toyvec",
            loss="infonce",
            batch_size=BATCH,
            progress=False,
            log_with=None,
            seed=5,
            **options,
        )
    finally:
        Trainer._optimise = optimise
    return {"steps": seen, "stream_epochs": model.trainer.stream_epochs}


if __name__ == "__main__":
    import logging

    from anycl.distributed import exit_process, process_info

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")  # the test reads it

    out = sys.argv[1]
    names = sys.argv[2:] or list(STREAMS)
    for name in names:
        result = run(name)
        rank, world = process_info()
        assert world == 2, world
        with open(os.path.join(out, f"{name}-rank{rank}.json"), "w") as f:
            json.dump(result, f)
    exit_process()  # both done, the group closed, and no interpreter teardown for gloo's threads to abort
