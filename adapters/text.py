"""Text: a sentence-transformers model as the encoder, tokenization batched in collate.

Kept minimal in the core: the tokenizer comes from the attached encoder, texts longer than the
model's ``max_seq_length`` are truncated by it. Self-supervised text (a single column of sentences)
trains SimCSE-style: the two views are the same sentence under different dropout masks.

A folder of ``.txt`` files is read as texts, one item per file: the file's UTF-8 text (a byte-order mark
dropped, whitespace at both ends stripped), at most :data:`MAX_TEXT_FILE_BYTES` per file; a larger, empty or
non-UTF-8 file is a DataError naming it (:func:`read_text_file`).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from anycl.errors import ConfigError, DataError, unknown_options
from anycl.progress import quiet_library_bars

from .base import Adapter
from .registry import register
from .text_folder import check_no_code, check_text_folder
from .text_items import MAX_TEXT_FILE_BYTES, check_unicode, read_text_file  # noqa: F401  (importable from here)
from .text_model import (  # noqa: F401  (importable from here, as before)
    DEFAULT_MODEL_ID,
    SentenceTransformerEncoder,
    base_model_id,
    default_text_model,
    finite_limit,
    resolve_text_model,
)

log = logging.getLogger("anycl")


@register("text")
class TextAdapter(Adapter):
    """Strings in, token ids out.

    Options:
        max_seq_length: override the model's maximum length (tokens); longer texts are truncated and
            their number is reported once (a warning at the first truncation; the running totals are
            ``adapter.truncated`` of ``adapter.tokenized`` texts).
        span_dropout: fraction (0..1) of a training view's words deleted as one random contiguous
            span (default 0: off).
        token_cutoff: probability (0..1) that each word of a training view is deleted (default 0).

    Without ``span_dropout``/``token_cutoff`` the two views of an unpaired sentence differ only by
    the encoder's dropout (SimCSE). When set, they apply to every training view (anchors, positives
    and negatives of paired data too); evaluation and ``encode`` never augment. At least one word is
    always kept.
    """

    modality = "text"
    supports_prompts = True  # collate(items, prompt=...): anycl.data.prompts
    text_items = True  # a string item is the text itself
    claims_model_name = True  # fit(model="name") names the text tower's sentence-transformers model
    pretrained_default = True  # one-column text (SimCSE) keeps one epoch: no step budget for a pretrained model
    pipeline_tag = "sentence-similarity"
    onnx_dynamic_axes = {0: "batch", 1: "tokens"}

    export_formats = ("sentence-transformers",)  # anycl.export.to_sentence_transformers

    file_extensions = (".txt",)
    item_from_file = staticmethod(read_text_file)  # a folder's .txt files are read as texts
    default_loss = "infonce"
    default_loss_options = {"temperature": 0.05}
    # lr_schedule "constant": fine-tuning a pretrained model for a short budget gains from not decaying the
    # learning rate (FOLDOC and GCIDE dev splits, 1 epoch: +0.011 nDCG@10 over cosine decay; docs/text.md)
    # in_batch_defaults: with the default sampler, rows of similar token length share a batch (windows of 8
    # batches): less padding, 1.2-1.3x the pairs/s; dev splits: FOLDOC +0.003, GCIDE -0.004 nDCG@10 (docs/text.md)
    fit_defaults = {
        "batch_size": 32,
        "lr": 2e-5,
        "head": None,
        "lr_schedule": "constant",
        "in_batch_defaults": {"group_by_length": 8},
    }

    def __init__(
        self, max_seq_length: Optional[int] = None, span_dropout: float = 0.0, token_cutoff: float = 0.0, **options
    ):
        for name, v in (("span_dropout", span_dropout), ("token_cutoff", token_cutoff)):
            if not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
                raise ConfigError(f"text adapter option {name} must be a number in [0, 1), got {v!r}")
        if max_seq_length is not None and (not isinstance(max_seq_length, int) or max_seq_length < 2):
            raise ConfigError(f"max_seq_length must be an int >= 2, got {max_seq_length!r}")
        if options:
            raise unknown_options("text adapter", list(options), ["max_seq_length", "span_dropout", "token_cutoff"])
        kept = {k: v for k, v in (("span_dropout", span_dropout), ("token_cutoff", token_cutoff)) if v}
        super().__init__(max_seq_length=max_seq_length, **kept)
        self.max_seq_length = max_seq_length
        self.span_dropout = float(span_dropout)
        self.token_cutoff = float(token_cutoff)
        self._st = None
        self.truncated = 0  # texts cut at max_seq_length so far
        self.tokenized = 0
        self._warned = False

    def augment(self, item: str, generator: torch.Generator) -> str:
        """Span dropout then token cutoff on whitespace-separated words (no-op when both are 0)."""
        if not (self.span_dropout or self.token_cutoff):
            return item
        words = item.split()
        if len(words) < 2:
            return item
        if self.span_dropout:
            n = int(round(self.span_dropout * len(words)))
            n = min(n, len(words) - 1)
            if n > 0:
                start = int(torch.randint(0, len(words) - n + 1, (1,), generator=generator))
                words = words[:start] + words[start + n :]
        if self.token_cutoff and len(words) > 1:
            keep = (torch.rand(len(words), generator=generator) >= self.token_cutoff).tolist()
            if not any(keep):
                keep[int(torch.randint(0, len(words), (1,), generator=generator))] = True
            words = [w for w, k in zip(words, keep) if k]
        return " ".join(words)

    def validate(self, item, where):
        if not isinstance(item, str):
            raise DataError(f"{where} must be a string for modality 'text', got {type(item).__name__}: {item!r:.80}")
        if not item.strip():
            raise DataError(f"{where} is an empty string; remove empty texts or fill them in")
        check_unicode(item, where)

    def validate_for_encode(self, item, where):
        # an empty text still has an embedding (its special tokens'), as sentence-transformers gives it;
        # only training data refuses it (validate); a lone surrogate is refused here too (the tokenizer cannot take it)
        if not isinstance(item, str):
            raise DataError(f"{where} must be a string for modality 'text', got {type(item).__name__}: {item!r:.80}")
        check_unicode(item, where)

    def key(self, item):
        return item

    @staticmethod
    def onnx_input_axes(name: str, value: Any) -> Optional[Dict[int, str]]:
        """ONNX dynamic axes of one input: a ``StaticEmbedding`` model's inputs are 1-D (the token ids of all
        texts in one run, and an offset per text); other models' are (batch, tokens), the class default."""
        if torch.is_tensor(value) and value.dim() == 1:
            return {0: "batch"} if name == "offsets" else {0: "tokens"}
        return None

    def adopt_encoder(self, module: nn.Module) -> nn.Module:
        """A ``SentenceTransformer`` object (any modules: Transformer, StaticEmbedding, Dense, a custom pooling)
        becomes the tower's encoder as it is: trained in place, not copied (``copy.deepcopy`` it first to keep
        the original). Other modules are used as they are."""
        from sentence_transformers import SentenceTransformer  # lazy: sentence-transformers

        if not isinstance(module, SentenceTransformer):
            return module
        enc = SentenceTransformerEncoder(module)
        base = getattr(getattr(module, "model_card_data", None), "base_model", None)
        enc.anycl_spec = {"model": None, **({"base_model": base} if isinstance(base, str) and base else {})}
        return enc

    def attach(self, encoder: nn.Module) -> None:
        st = getattr(encoder, "st", None)
        if st is None:
            raise TypeError(
                "the text adapter needs a sentence-transformers encoder (anycl wraps one when you pass "
                "model='path-or-name' or a SentenceTransformer object); got " + type(encoder).__name__
            )
        self._st = st
        if self.max_seq_length is not None:
            st.max_seq_length = int(self.max_seq_length)

    def lengths(self, items: List[str]) -> List[int]:
        """Token counts (what padding is made of), capped at ``max_seq_length``; strings only."""
        if self._st is None or not items or not all(isinstance(x, str) for x in items):
            return super().lengths(items)
        tokenizer = getattr(self._st, "tokenizer", None)
        if tokenizer is None:
            return super().lengths(items)
        limit = finite_limit(self._st)
        out = []
        for s in range(0, len(items), 4096):  # the fast tokenizer, in large chunks
            chunk = list(items[s : s + 4096])
            if callable(tokenizer):  # a transformers tokenizer
                ids = tokenizer(
                    chunk, add_special_tokens=True, truncation=False, return_attention_mask=False, verbose=False
                )["input_ids"]
            elif hasattr(tokenizer, "encode_batch"):  # a `tokenizers.Tokenizer` (StaticEmbedding's)
                ids = [e.ids for e in tokenizer.encode_batch(chunk, add_special_tokens=True)]
            else:
                return super().lengths(items)
            out += [min(len(x), limit) if limit else len(x) for x in ids]
        return out

    def example_views(self) -> List[str]:
        """Two sentences to trace an ONNX export with."""
        return ["an example sentence to trace the graph with", "a second, shorter one"]

    def collate(self, items: List[str], prompt: Optional[str] = None) -> Dict[str, Any]:
        """Tokenize a batch; ``prompt`` is put before every text the way sentence-transformers does it
        (its ``preprocess(prompt=...)``), which also records the prompt's token count for pooling
        that excludes the prompt (``include_prompt=False``)."""
        if self._st is None:
            raise RuntimeError("text adapter used before an encoder was attached")
        items = list(items)
        preprocess = getattr(self._st, "preprocess", None)
        if preprocess is not None:
            feats = preprocess(items, prompt=prompt) if prompt else preprocess(items)
        else:  # older sentence-transformers: tokenize the prompted texts
            feats = self._st.tokenize([prompt + x for x in items] if prompt else items)
        out = {k: v for k, v in feats.items() if torch.is_tensor(v)}
        if prompt and isinstance(feats.get("prompt_length"), int):  # a tensor, so it travels with the batch
            out["prompt_length"] = torch.tensor([feats["prompt_length"]])
        self._count_truncated(out)
        return out

    def _count_truncated(self, feats: Dict[str, Any]) -> None:
        """Texts whose token count reached ``max_seq_length`` were (almost always) cut there."""
        mask = feats.get("attention_mask")
        limit = finite_limit(self._st)
        if mask is None or not limit:
            return
        hit = int((mask.sum(1) >= int(limit)).sum())
        self.tokenized += int(mask.shape[0])
        if hit:
            self.truncated += hit
            if not self._warned:
                self._warned = True
                log.warning(
                    "texts longer than max_seq_length=%d tokens are truncated (%d of the %d texts "
                    "seen so far); running count in the text adapter's .truncated",
                    limit,
                    self.truncated,
                    self.tokenized,
                )

    def count(self, batch) -> int:
        if "offsets" in batch:  # StaticEmbedding: one flat run of token ids, an offset per text
            return int(batch["offsets"].shape[0])
        return int(batch["input_ids"].shape[0])

    def default_encoder(self, model: Optional[str] = None, device: Optional[str] = None) -> nn.Module:
        from sentence_transformers import SentenceTransformer  # lazy: sentence-transformers

        path = resolve_text_model(model)
        check_no_code(str(path))
        with quiet_library_bars():
            st = SentenceTransformer(str(path), device=device or "cpu")
        enc = SentenceTransformerEncoder(st)
        enc.anycl_spec = {"model": str(path), "base_model": base_model_id(model)}
        return enc

    def save_encoder(self, encoder: nn.Module, directory: str) -> Dict[str, Any]:
        # The sentence-transformers format itself (safetensors + JSON), so that
        # SentenceTransformer(directory) loads the fine-tuned model too.
        st: Any = encoder.st  # the SentenceTransformer inside a SentenceTransformerEncoder
        with quiet_library_bars():
            st.save(directory, safe_serialization=True)
        return {"kind": "sentence_transformers"}

    def load_encoder(self, spec: Dict[str, Any], directory: str) -> nn.Module:
        from sentence_transformers import SentenceTransformer  # lazy: sentence-transformers

        check_text_folder(directory)  # no code named by the folder, no sizes its weights do not hold
        try:
            with quiet_library_bars():
                st = SentenceTransformer(directory, device="cpu", local_files_only=True)
        except Exception as exc:  # the library's message does not say it is anycl's model folder that is wrong
            raise ConfigError(
                f"cannot load the text tower {directory}: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
            ) from exc
        enc = SentenceTransformerEncoder(st)
        enc.anycl_spec = {"model": directory}
        return enc
