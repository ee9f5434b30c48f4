"""sentence-transformers' names on :class:`~anycl.model.ContrastiveModel`: prompts by side, the similarity
function, the embedding width, ``truncate_dim`` and the text tower's ``max_seq_length``.

A mixin, so ``model.py`` keeps to building, encoding and saving; every attribute here reads or checks the
towers and sides that :class:`~anycl.model.ContrastiveModel` holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, cast

import torch

from anycl.data.prompts import check_prompt_map, prompt_for, st_prompts
from anycl.errors import ConfigError

from .embedding_ops import SIMILARITY_FUNCTIONS, check_truncate_dim, similarity
from .tower import Tower


class SentenceTransformerNames:
    """Prompts, similarity, widths and ``max_seq_length`` under sentence-transformers' names."""

    if TYPE_CHECKING:  # provided by ContrastiveModel
        sides: Dict[str, str]
        towers: Any

        @property
        def modalities(self) -> List[str]: ...

        def tower(self, side_or_modality: str) -> Tower: ...

    @property
    def prompts(self) -> Dict[str, str]:
        """Prompt text by side (``anchor``, ``positive``, ``negative``), set by ``fit(prompts=...)``;
        see :mod:`anycl.data.prompts`."""
        return dict(self.__dict__.get("_prompts", {}))

    @prompts.setter
    def prompts(self, value: Optional[Mapping[str, str]]) -> None:
        value = check_prompt_map(value)
        for side in value:
            if side in self.sides and not getattr(self.tower(side).adapter, "supports_prompts", False):
                raise ConfigError(f"prompts apply to text only; the {side} side is {self.tower(side).modality!r}")
        had = bool(self.__dict__.get("_prompts"))
        self.__dict__["_prompts"] = value
        for name, tower in self.towers.items():  # the sentence-transformers folders carry them too
            st = getattr(tower.encoder, "st", None)
            if st is not None and (value or had):  # a base model's own prompts stay until anycl sets some
                st.prompts = st_prompts(value, [s for s, m in self.sides.items() if m == name])

    def prompt_for(self, side: str) -> Optional[str]:
        """The prompt of a side (``negative`` falls back to ``positive``); None without one."""
        return prompt_for(self.prompts, side)

    @property
    def similarity_fn_name(self) -> str:
        """``cosine`` (default), ``dot``, ``euclidean`` or ``manhattan``: what :meth:`similarity` computes."""
        return self.__dict__.get("_similarity_fn_name", "cosine")

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        value = getattr(value, "value", value)
        if value not in SIMILARITY_FUNCTIONS:
            raise ConfigError(f"similarity_fn_name must be one of {list(SIMILARITY_FUNCTIONS)}, got {value!r}")
        self.__dict__["_similarity_fn_name"] = value

    def similarity(self, a, b) -> torch.Tensor:
        """(N, M) similarities of two sets of embeddings with :attr:`similarity_fn_name`."""
        return similarity(a, b, self.similarity_fn_name)

    def _default_modality(self) -> str:
        return self.sides.get("anchor", self.modalities[0])

    def embedding_width(self, modality: Optional[str] = None) -> Optional[int]:
        """Width of what :meth:`encode` returns for a tower (before ``truncate_dim``)."""
        tower = self.tower(modality or self._default_modality())
        if tower.encode_with_head and tower.head is not None:
            spec: Any = tower.head.anycl_spec  # a projection head's: how to rebuild it
            return int(spec["out_dim"])
        return tower.adapter.embedding_dim(tower.encoder)

    def get_sentence_embedding_dimension(self, modality: Optional[str] = None) -> Optional[int]:
        """The width of :meth:`encode`'s vectors (``truncate_dim`` applied when set on the model)."""
        width = self.embedding_width(modality)
        return min(width, self.truncate_dim) if self.truncate_dim and width else width

    get_embedding_dimension = get_sentence_embedding_dimension

    @property
    def truncate_dim(self) -> Optional[int]:
        """Default ``truncate_dim`` of :meth:`encode` (None: full width)."""
        return self.__dict__.get("_truncate_dim")

    @truncate_dim.setter
    def truncate_dim(self, value: Optional[int]) -> None:
        self.__dict__["_truncate_dim"] = check_truncate_dim(value, self.embedding_width())

    def _text_tower(self) -> Tower:
        """The first tower (the default one first) that is a sentence-transformers model (its adapter lists
        the format), whose max_seq_length this is."""
        for name in [self._default_modality(), *self.modalities]:
            tower = cast(Tower, self.towers[name])
            if "sentence-transformers" in getattr(tower.adapter, "export_formats", ()):
                return tower
        raise ConfigError(f"this model has no text tower (modalities {self.modalities}); max_seq_length is text's")

    @property
    def max_seq_length(self) -> int:
        """The text tower's maximum length in tokens (longer texts are truncated); settable."""
        st: Any = self._text_tower().encoder.st  # a SentenceTransformerEncoder's model
        return int(st.max_seq_length)

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        tower = self._text_tower()
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigError(f"max_seq_length must be an int >= 2, got {value!r}")
        st: Any = tower.encoder.st
        st.max_seq_length = value
        tower.adapter.max_seq_length = value
        tower.adapter.options["max_seq_length"] = value
