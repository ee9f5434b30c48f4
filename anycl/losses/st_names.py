"""sentence-transformers' loss class names: the one table of what each is in anycl.

``loss="MultipleNegativesRankingLoss"`` (and every name of :data:`ST_LOSSES` with an ``anycl`` name) builds
the anycl loss that computes the same thing, with the options that make it equal to sentence-transformers'
defaults (``TripletLoss``: ``margin=5`` on raw embeddings) and sentence-transformers' option names translated
(``scale`` → ``temperature = 1 / scale``). A name whose sentence-transformers loss is not one anycl loss is
refused with what to write instead (``CachedMultipleNegativesRankingLoss``: ``loss="infonce"`` and
``gradcache_mini_batch``). The tests check every alias against sentence-transformers' own loss and that
docs/losses.md's table lists this one.

The names match case-insensitively, with or without ``_``/``-``; anycl's own registered names come first.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Tuple

from anycl.errors import ConfigError


def _inverse(option: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{option} must be a positive number, got {value!r}")
        return 1.0 / float(value)

    return convert


class STLoss(NamedTuple):
    """What a sentence-transformers loss is in anycl: ``anycl`` (a registered name) with ``options``, and its
    option names renamed (``{st_option: (anycl_option, convert)}``); or, with ``anycl`` None, ``refusal``."""

    anycl: Optional[str]
    options: Mapping[str, Any] = {}
    renames: Mapping[str, Tuple[str, Optional[Callable[[Any], Any]]]] = {}
    refusal: str = ""
    note: str = ""  # docs/losses.md's table: options that keep their sentence-transformers name


_SCALE = {"scale": ("temperature", _inverse("scale"))}
_GRADCACHE = "fit(..., gradcache_mini_batch=32): the same loss and gradients, embedded in mini-batches (GradCache)"
_GUIDE = "fit(..., guide=<the guide model, or 'start'>, guide_margin=..., guide_margin_strategy=...)"
_BATCH_TRIPLET = (
    "sentence-transformers' batch triplet losses take single labelled items; anycl's nearest are loss='supcon' "
    "(every same-label item a positive) and loss='triplet' with loss_options={{'mining': '{mining}'}} on "
    "(anchor, positive) pairs with a 'label' column"
)

ST_LOSSES: Dict[str, STLoss] = {
    "MultipleNegativesRankingLoss": STLoss(
        "infonce",
        renames=_SCALE,
        note="`directions`, `partition_mode`, `hardness_mode`, `hardness_strength` as in sentence-transformers",
    ),
    "MultipleNegativesSymmetricRankingLoss": STLoss("infonce", {"symmetric": True}, _SCALE),
    "CoSENTLoss": STLoss("cosent"),
    "AnglELoss": STLoss("angle"),
    "CosineSimilarityLoss": STLoss("cosine_mse"),
    "MSELoss": STLoss("distill_mse"),
    "MarginMSELoss": STLoss("margin_mse"),
    "TripletLoss": STLoss(
        "triplet", {"margin": 5.0, "metric": "euclidean", "normalize": False}, {"triplet_margin": ("margin", None)}
    ),
    "ContrastiveLoss": STLoss("contrastive"),
    "OnlineContrastiveLoss": STLoss("online_contrastive"),
    "MegaBatchMarginLoss": STLoss("mega_batch_margin"),
    "SoftmaxLoss": STLoss(
        "softmax", renames={"embedding_dimension": ("dim", None), "sentence_embedding_dimension": ("dim", None)}
    ),
    "DistillKLDivLoss": STLoss("distill_kl"),
    "CachedMultipleNegativesRankingLoss": STLoss(None, refusal=f"use loss='infonce' with {_GRADCACHE}"),
    "CachedMultipleNegativesSymmetricRankingLoss": STLoss(
        None, refusal=f"use loss='infonce', loss_options={{'symmetric': True}} with {_GRADCACHE}"
    ),
    "GISTEmbedLoss": STLoss(
        None,
        refusal=f"use loss='infonce', temperature=0.01 (GISTEmbedLoss's default) with {_GUIDE}",
    ),
    "CachedGISTEmbedLoss": STLoss(
        None, refusal=f"use loss='infonce' with {_GUIDE} and gradcache_mini_batch=32 (GradCache)"
    ),
    "MatryoshkaLoss": STLoss(
        None,
        refusal="name the inner loss and give fit(..., matryoshka_dims=[768, 512, 256, 128, 64], "
        "matryoshka_weights=[...]): anycl wraps it in its Matryoshka loss",
    ),
    "Matryoshka2dLoss": STLoss(
        None, refusal="anycl does not train layer-wise (AdaptiveLayerLoss); for nested widths give matryoshka_dims"
    ),
    "AdaptiveLayerLoss": STLoss(
        None, refusal="anycl does not train layer-wise; for nested widths give fit(..., matryoshka_dims=[...])"
    ),
    "BatchAllTripletLoss": STLoss(None, refusal=_BATCH_TRIPLET.format(mining="all")),
    "BatchHardTripletLoss": STLoss(None, refusal=_BATCH_TRIPLET.format(mining="batch_hard")),
    "BatchHardSoftMarginTripletLoss": STLoss(None, refusal=_BATCH_TRIPLET.format(mining="batch_hard")),
    "BatchSemiHardTripletLoss": STLoss(None, refusal=_BATCH_TRIPLET.format(mining="semi_hard")),
    "ContrastiveTensionLoss": STLoss(
        "contrastive_tension",
        note="a trained copy of the model embeds the first column; only the model is saved. One column of "
        "sentences is paired by the `contrastive_tension` sampler (`pos_neg_ratio`)",
    ),
    "ContrastiveTensionLossInBatchNegatives": STLoss(
        "contrastive_tension_in_batch",
        renames=_SCALE,
        note="one column of sentences; a trained copy of the model embeds it too; only the model is saved",
    ),
    "DenoisingAutoEncoderLoss": STLoss(
        None,
        refusal="TSDAE needs a transformer decoder (as large as the encoder: about 110M parameters for a "
        "BERT-base model) that rebuilds each sentence's tokens from its embedding; an anycl loss sees embeddings, "
        "never token ids, and anycl has no decoder. For unsupervised text give a single column of sentences "
        "(SimCSE-style loss='infonce')",
    ),
    "EmbedDistillLoss": STLoss(
        None, refusal="anycl distils embeddings with loss='distill_mse' (MSE; normalize=True on unit vectors)"
    ),
    "GlobalOrthogonalRegularizationLoss": STLoss(
        None, refusal="anycl has no such regulariser; the collapse watch reports the embeddings' spread"
    ),
}
# other spellings users reach for, refused with their sentence-transformers loss's reason
EXTRA_NAMES = {"tsdae": "DenoisingAutoEncoderLoss"}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "").replace("-", "")


_BY_KEY = {_key(n): n for n in ST_LOSSES} | {_key(k): v for k, v in EXTRA_NAMES.items()}


def st_loss_name(name: str) -> Optional[str]:
    """The sentence-transformers class name that ``name`` spells (any case, ``_``/``-`` ignored), or None."""
    return _BY_KEY.get(_key(name))


def resolve(name: str, options: Mapping[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """The anycl loss name and options for the sentence-transformers loss ``name`` with ``options`` (its own
    option names or anycl's); a loss anycl does not have as such is a ConfigError saying what to use."""
    st_name = st_loss_name(name)
    assert st_name is not None, name
    entry = ST_LOSSES[st_name]
    if entry.anycl is None:
        raise ConfigError(f"loss {name!r}: sentence-transformers' {st_name} is not one anycl loss; {entry.refusal}")
    out = dict(entry.options)
    for key, value in options.items():
        target, convert = entry.renames.get(key, (key, None))
        if target in options and target != key:
            raise ConfigError(
                f"loss {name!r}: give {key!r} (sentence-transformers' name) or {target!r} (anycl's), not both"
            )
        out[target] = convert(value) if convert is not None else value
    return entry.anycl, out


def refuse_st_module(loss: Any) -> None:
    """A sentence-transformers loss object holds its own model and cannot score anycl's embeddings: refuse
    it, naming what to pass instead."""
    cls = type(loss)
    if not cls.__module__.startswith("sentence_transformers"):
        return
    entry = ST_LOSSES.get(cls.__name__)
    instead = (
        f"pass its name, loss={cls.__name__!r} (anycl's {entry.anycl!r}), with its options in loss_options"
        if entry is not None and entry.anycl is not None
        else (entry.refusal if entry is not None else "pass the name of an anycl loss (anycl.losses.names())")
    )
    raise ConfigError(
        f"loss: a sentence-transformers loss object ({cls.__name__}) runs its own model, while anycl's loss "
        f"scores the embeddings of the model being trained; {instead}"
    )


def loss_table() -> str:
    """docs/losses.md's table of sentence-transformers' losses (Markdown), row by row from :data:`ST_LOSSES`."""
    rows = ["| sentence-transformers | anycl | |", "|---|---|---|"]
    for name, entry in ST_LOSSES.items():
        if entry.anycl is None:
            rows.append(f"| `{name}` | refused | {entry.refusal} |")
            continue
        options = ", ".join(f"{k}={v!r}" for k, v in entry.options.items())
        renames = ", ".join(f"`{k}` → `{t}`" + (" (1 / scale)" if f else "") for k, (t, f) in entry.renames.items())
        notes = "; ".join(n for n in (renames, entry.note) if n)
        rows.append(f"| `{name}` | `{entry.anycl}`{f' ({options})' if options else ''} | {notes} |")
    return "\n".join(rows)
