"""Mining at scale, in one process: ties ranked by the lower id (so shards merge to the one-process
result), the embedding cache on disk, and the FAISS backend."""

import logging
import sys

import pytest
import torch
import torch.nn.functional as F
from mining_toys import ItemEmbedder, pairs_and_corpus

from anycl.data.inputs import to_rows
from anycl.errors import ConfigError
from anycl.mining.embed_cache import EmbeddingCache, model_key
from anycl.mining.mine import mine_hard_negatives
from anycl.mining.shard import Shard
from anycl.sampling.mined import MinedNegativeSampler
from anycl.search.exact import merge_ranked, recall_at_k, topk


def reference_topk(q, d, k, exclude):
    """Sort every score in Python: by score descending, then by the lower index (scores: float64 dot
    products rounded to float32, the definition of anycl.search.rescore.pair_dots)."""
    out = []
    for i in range(q.shape[0]):
        scores = (q[i].double() * d.double()).sum(-1).float().tolist()
        ranked = sorted((j for j in range(d.shape[0]) if j not in exclude[i]), key=lambda j: (-scores[j], j))
        out.append(ranked[:k])
    return out


def tied_embeddings(n=40, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = F.normalize(torch.randn(n // 2, dim, generator=g), dim=-1)
    d = base[torch.randint(0, n // 2, (n,), generator=g)]  # about half the documents duplicate another
    q = F.normalize(torch.randn(9, dim, generator=g), dim=-1)
    exclude = [[(3 * i) % n, (7 * i + 1) % n] for i in range(9)]
    return q, d, exclude


@pytest.mark.parametrize("chunk,corpus_chunk", [(1024, -1), (2, 3), (4, 7), (5, None)])
def test_ties_are_ranked_by_the_lower_index_whatever_the_blocks(chunk, corpus_chunk):
    q, d, exclude = tied_embeddings()
    _, idx = topk(q, d, 12, exclude, chunk_size=chunk, corpus_chunk_size=corpus_chunk)
    assert idx.tolist() == reference_topk(q, d, 12, exclude)


def test_more_equal_scores_than_the_slack_fall_back_to_the_exact_order(monkeypatch):
    import anycl.search.exact as search

    calls = []
    real = search.canonical_topk
    monkeypatch.setattr(search, "canonical_topk", lambda *a, **k: calls.append(1) or real(*a, **k))
    g = torch.Generator().manual_seed(3)
    d = F.normalize(torch.randn(60, 8, generator=g), dim=-1)
    d[10:50] = d[5]  # 41 documents with the same embedding
    q = d[5:6] + 0.01 * torch.randn(1, 8, generator=g)
    s, i = topk(q, d, 12, [[7]], chunk_size=4)
    assert calls and i.tolist() == reference_topk(q, d, 12, [[7]])
    assert i[0].tolist() == [5] + list(range(10, 21))


def test_pair_dots_do_not_depend_on_the_batch():
    from anycl.search.rescore import pair_dots

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 384, generator=g), torch.randn(300, 384, generator=g)
    whole = pair_dots(a, b)
    assert all(pair_dots(a[j : j + 1], b[j : j + 1]).item() == whole[j].item() for j in range(0, 300, 7))
    assert torch.equal(pair_dots(a[5:200], b[5:200]), whole[5:200])


@pytest.mark.parametrize("world", [2, 3, 5])
def test_shards_merged_by_score_then_id_give_the_one_process_top_k(world):
    q, d, exclude = tied_embeddings(n=41)
    one_s, one_i = topk(q, d, 10, exclude, chunk_size=4)
    parts_s, parts_i = [], []
    bounds = []
    for r in range(world):  # what each process of Shard.topk computes before the all-gather
        sh = Shard(d.shape[0], r, world)
        bounds.append((sh.start, sh.stop))
        ex = [[c - sh.start for c in e if sh.start <= c < sh.stop] for e in exclude]
        s, i = topk(q, d[sh.start : sh.stop], 10, ex, chunk_size=4)
        parts_s.append(s)
        parts_i.append(torch.where(i >= 0, i + sh.start, i))
    assert bounds[0][0] == 0 and bounds[-1][1] == 41 and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    s, i = merge_ranked(torch.cat(parts_s, 1), torch.cat(parts_i, 1), 10)
    assert i.tolist() == one_i.tolist()
    torch.testing.assert_close(s, one_s, rtol=0, atol=0)


def test_recall_at_k_counts_the_share_of_reference_ids_found():
    ref = torch.tensor([[1, 2, 3, 4], [5, 6, -1, -1], [-1, -1, -1, -1]])
    found = torch.tensor([[4, 9, 1, 8], [6, 5, 7, 0], [1, 2, 3, 4]])
    assert recall_at_k(ref, found) == pytest.approx((2 / 4 + 2 / 2) / 2)
    assert recall_at_k(ref, found, k=2) == pytest.approx((0 / 2 + 2 / 2) / 2)
    assert recall_at_k(ref, ref) == 1.0


# -- the embedding cache -------------------------------------------------------------------------------
def mine(model, tmp_path=None, corpus=None, **kw):
    pairs, extra = pairs_and_corpus()
    cache = {} if tmp_path is None else {"cache_dir": str(tmp_path / "cache")}
    return mine_hard_negatives(
        model, pairs, extra if corpus is None else corpus, num_negatives=3, verbose=False, **cache, **kw
    )


def test_a_second_call_embeds_nothing_and_the_result_is_the_same_as_without_cache(tmp_path):
    plain, _ = mine(ItemEmbedder())
    first_model = ItemEmbedder()
    first, stats1 = mine(first_model, tmp_path)
    second_model = ItemEmbedder()
    second, stats2 = mine(second_model, tmp_path)
    assert first == plain == second
    assert first_model.seen == stats1.embedded > 0 and stats1.cache_hits == 0
    assert second_model.seen == 0 and second_model.calls == 0
    assert stats2.embedded == 0 and stats2.cache_hits == first_model.seen


def test_only_new_items_are_embedded(tmp_path):
    pairs, extra = pairs_and_corpus()
    mine(ItemEmbedder(), tmp_path)
    model = ItemEmbedder()
    rows, _ = mine(model, tmp_path, corpus=extra + ["brand new 1", "brand new 2"])
    assert model.seen == 2
    assert rows == mine(ItemEmbedder(), corpus=extra + ["brand new 1", "brand new 2"])[0]


def test_a_changed_weight_reuses_nothing(tmp_path):
    mine(ItemEmbedder(), tmp_path)
    changed = ItemEmbedder()
    with torch.no_grad():
        changed.proj.weight[0, 0] += 1e-3
    rows, stats = mine(changed, tmp_path)
    assert stats.cache_hits == 0 and changed.seen == stats.embedded > 0
    fresh = ItemEmbedder()
    with torch.no_grad():
        fresh.proj.weight[0, 0] += 1e-3
    assert rows == mine(fresh)[0]
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2


def test_the_model_key_follows_weights_precision_and_side_settings():
    a, b = ItemEmbedder(), ItemEmbedder()
    assert model_key(a, "anchor", "fp32") == model_key(b, "anchor", "fp32")
    assert model_key(a, "anchor", "fp32") != model_key(a, "anchor", "bf16")
    with torch.no_grad():
        b.proj.weight[3, 2] *= 2
    assert model_key(a, "anchor", "fp32") != model_key(b, "anchor", "fp32")


def test_an_anycl_model_key_follows_its_prompts_and_max_seq_length(minilm_path, tmp_path):
    from anycl.model.contrastive import build_model

    model = build_model({"anchor": "text", "positive": "text"}, model=minilm_path, head=None)
    plain = model_key(model, "anchor", "fp32")
    assert model_key(model, "positive", "fp32") == plain  # one tower, no prompts: the same embeddings
    model.prompts = {"anchor": "query: "}
    assert model_key(model, "anchor", "fp32") not in (plain, model_key(model, "positive", "fp32"))
    short = build_model(
        {"anchor": "text", "positive": "text"}, model=minilm_path, head=None, adapter_options={"max_seq_length": 16}
    )
    assert model_key(short, "positive", "fp32") != plain
    texts = ["a cached sentence", "another one"]
    cache = EmbeddingCache(tmp_path)
    first = cache.embed(short, texts, "positive", 8, "fp32")
    again = EmbeddingCache(tmp_path)
    torch.testing.assert_close(again.embed(short, texts, "positive", 8, "fp32"), first, rtol=0, atol=0)
    assert (again.hits, again.misses) == (2, 0)
    torch.testing.assert_close(first, short.encode(texts), rtol=0, atol=1e-6)


def test_a_sentence_transformer_key_follows_its_pooling_and_truncate_dim(minilm_path):
    # settings that change the embeddings but hold no parameter must change the key (no stale reuse)
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(minilm_path, device="cpu")
    plain = model_key(st, "anchor", "fp32")
    assert model_key(SentenceTransformer(minilm_path, device="cpu"), "anchor", "fp32") == plain
    st.truncate_dim = 8
    assert model_key(st, "anchor", "fp32") != plain
    st.truncate_dim = None
    if hasattr(st[1], "pooling_mode"):  # sentence-transformers >= 6
        st[1].pooling_mode = "cls"
    else:
        st[1].pooling_mode_mean_tokens, st[1].pooling_mode_cls_token = False, True
    assert model_key(st, "anchor", "fp32") != plain


def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(tmp_path, caplog):
    expected, _ = mine(ItemEmbedder(), tmp_path)
    parts = list((tmp_path / "cache").glob("*/part-*.safetensors"))
    assert parts
    parts[0].write_bytes(parts[0].read_bytes()[:100])  # truncated
    model = ItemEmbedder()
    with caplog.at_level(logging.WARNING, logger="anycl"):
        rows, stats = mine(model, tmp_path)
    assert "cannot be read" in caplog.text and parts[0].name in caplog.text
    assert rows == expected and model.seen > 0 and stats.embedded == model.seen
    model = ItemEmbedder()
    assert mine(model, tmp_path)[0] == expected and model.seen == 0  # rebuilt


def test_cache_keep_removes_the_least_recently_used_model_states(tmp_path):
    for scale in (1.0, 2.0, 3.0):
        m = ItemEmbedder()
        with torch.no_grad():
            m.proj.weight.mul_(scale)
        mine(m, tmp_path, cache_keep=2)
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2
    m = ItemEmbedder()  # scale 1.0: the oldest, removed
    mine(m, tmp_path, cache_keep=2)
    assert m.seen > 0


def test_cache_errors_are_config_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        mine(ItemEmbedder(), cache_dir=str(tmp_path / "file" / "cache"))
    table = ItemEmbedder()
    with pytest.raises(ConfigError, match="no state_dict"):
        mine(lambda items: table(items), tmp_path)
    with pytest.raises(ConfigError, match="cache_keep"):
        EmbeddingCache(tmp_path, keep=0)


def test_a_guide_that_cannot_be_cached_is_refused_before_anything_is_embedded(tmp_path):
    # said before the mining model embeds (under several processes, an error raised only by the processes
    # that reach it later would leave the others waiting in a collective)
    model, table = ItemEmbedder(), ItemEmbedder()
    with pytest.raises(ConfigError, match="no state_dict"):
        mine(model, tmp_path, guide=lambda items: table(items))
    assert model.seen == 0 and table.seen == 0


def test_the_mined_sampler_passes_cache_dir_through(tmp_path):
    pairs, extra = pairs_and_corpus()
    rows = to_rows([{"anchor": a, "positive": p} for a, p in pairs])
    seen = []
    for _ in range(2):
        sampler = MinedNegativeSampler(num_negatives=2, corpus=extra, cache_dir=str(tmp_path / "c"), verbose=False)
        model = ItemEmbedder()
        sampler.refresh(model, rows, 0)
        seen.append(model.seen)
    assert seen[0] > 0 and seen[1] == 0
    assert sampler.history[-1]["cache_hits"] == seen[0]


def test_items_stored_in_several_part_files_are_all_found(tmp_path):
    # two calls write two part files; a third asking for the items of both must embed nothing (the search
    # through the parts once stopped when the items found equalled the items still wanted)
    model = ItemEmbedder()
    cache = EmbeddingCache(tmp_path)
    first = cache.embed(model, ["a", "b"], "anchor", 8, "fp32")
    second = cache.embed(model, ["c", "d"], "anchor", 8, "fp32")
    assert len(list(tmp_path.glob("*/part-*.safetensors"))) == 2 and model.seen == 4
    again = EmbeddingCache(tmp_path)
    both = again.embed(model, ["a", "b", "c", "d"], "anchor", 8, "fp32")
    assert (again.hits, again.misses, model.seen) == (4, 0, 4)
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=0, atol=0)


# -- the FAISS backend ---------------------------------------------------------------------------------
def embeddings(n=300, nq=40, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(nq, dim, generator=g), dim=-1), F.normalize(torch.randn(n, dim, generator=g), dim=-1)


def test_flat_faiss_finds_the_exact_top_k():
    pytest.importorskip("faiss")
    from anycl.search.faiss_index import faiss_topk

    q, d = embeddings()
    exclude = [[i, (5 * i) % 300, (11 * i + 2) % 300] for i in range(40)]
    s_exact, i_exact = topk(q, d, 15, exclude)
    s_f, i_f = faiss_topk(q, d, 15, exclude, chunk_size=16)
    assert i_f.tolist() == i_exact.tolist()
    torch.testing.assert_close(s_f, s_exact, rtol=0, atol=1e-5)
    d[100:120] = d[7]  # more equal scores than the slack: flat FAISS falls back to the exact order too
    _, i_exact = topk(q, d, 15, exclude)
    assert faiss_topk(q, d, 15, exclude)[1].tolist() == i_exact.tolist()
    small_s, small_i = faiss_topk(q[:3], d[:5], 8, [[0], [1, 2], []])  # fewer documents than k
    ref_s, ref_i = topk(q[:3], d[:5], 8, [[0], [1, 2], []])
    assert small_i.tolist() == ref_i.tolist() and torch.isinf(small_s).tolist() == torch.isinf(ref_s).tolist()


def test_ivf_recall_is_reported_between_0_and_1_and_mining_with_faiss_matches_exact():
    pytest.importorskip("faiss")
    from anycl.search.faiss_index import faiss_recall

    q, d = embeddings(n=2000, nq=50)
    recall = faiss_recall(q, d, 10, index="ivf", nlist=32, nprobe=2)
    assert 0.0 <= recall <= 1.0
    assert faiss_recall(q, d, 10, index="ivf", nlist=32, nprobe=32) == pytest.approx(1.0)  # every list scanned
    assert faiss_recall(q, d, 10) == 1.0  # flat
    assert mine(ItemEmbedder(), backend="faiss")[0] == mine(ItemEmbedder())[0]
    rows, stats = mine(ItemEmbedder(), backend="faiss", faiss_options={"index": "ivf", "nlist": 4, "nprobe": 1})
    assert stats.backend == "faiss" and len(rows) > 0


def test_the_faiss_index_is_built_once_per_mining_pass(monkeypatch):
    # the queries are searched in blocks (mining_shard.GATHER_BLOCK); the corpus's index must not be
    # rebuilt (an IVF one re-trained) for each block
    pytest.importorskip("faiss")
    import anycl.mining.shard as mining_shard
    import anycl.search.faiss_index as search_faiss

    expected = mine(ItemEmbedder())[0]
    built = []
    real_build = search_faiss.build_index
    monkeypatch.setattr(search_faiss, "build_index", lambda *a, **kw: built.append(1) or real_build(*a, **kw))
    monkeypatch.setattr(mining_shard, "GATHER_BLOCK", 8)
    assert mine(ItemEmbedder(), backend="faiss", chunk_size=8)[0] == expected
    assert len(built) == 1


def test_missing_faiss_and_bad_backend_options_are_config_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'anycl\[faiss\]'"):
        mine(ItemEmbedder(), backend="faiss")
    with pytest.raises(ConfigError, match=r"anycl\[faiss\]"):
        MinedNegativeSampler(backend="faiss")
    with pytest.raises(ConfigError, match="backend must be 'exact' or 'faiss'"):
        mine(ItemEmbedder(), backend="annoy")
    monkeypatch.delitem(sys.modules, "faiss")
    pytest.importorskip("faiss")
    for bad, match in [
        ({"index": "hnsw"}, "index must be one of"),
        ({"nprobe": 0}, "nprobe must be an int >= 1"),
        ({"nlist": 2.5}, "nlist must be an int >= 1 or None"),
        ({"probes": 3}, "unknown faiss_options"),
        ("ivf", "faiss_options must be a dict"),
    ]:
        with pytest.raises(ConfigError, match=match):
            mine(ItemEmbedder(), backend="faiss", faiss_options=bad)
