"""Publishing to the Hugging Face Hub: :func:`push_to_hub` and :func:`download`.

``push_to_hub`` writes the model into a temporary folder in the chosen format (``"anycl"``: the folder
``model.save`` writes; ``"sentence-transformers"`` or any other registered export), rewrites its cards for the
repository (the loading snippet names ``repo_id``; no card or ``config.yaml`` names a local path), then makes
two calls of ``huggingface_hub.HfApi``: ``create_repo(repo_id, private=, exist_ok=, repo_type="model")`` and
``upload_folder(repo_id=, folder_path=, commit_message=, revision=, create_pr=)``. It returns the commit's URL.

``download`` is what ``anycl.load("org/name")`` uses for a Hub id that is not a local folder:
``snapshot_download``, which reads the local cache when offline (``HF_HUB_OFFLINE=1``) and fails with an error
naming the repository when it is not there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from anycl.errors import ConfigError, UnknownNameError

from . import registry
from .card import write_card, write_model_files
from .card_sources import is_hub_id

CARD_KINDS = {"modules.json": "sentence-transformers", "model.onnx": "onnx"}  # what the folder holds → its card


def _api(token: Optional[str]) -> Any:
    try:
        from huggingface_hub import HfApi  # lazy: only publishing needs it
    except ImportError as exc:  # pragma: no cover - a dependency of transformers, always there
        raise ConfigError("push_to_hub needs the huggingface_hub package: pip install huggingface_hub") from exc
    return HfApi(token=token)


def set_card_fields(model: Any, license: Optional[str] = None, language: Optional[Any] = None) -> None:
    """Record the card's ``license`` and ``language`` in ``model.info["card"]`` (kept by later saves)."""
    for key, value in (("license", license), ("language", language)):
        if value is None:
            continue
        if not (isinstance(value, str) and value.strip()) and not (
            isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise ConfigError(f"{key}= takes a non-empty string (or, for language, a list of them); got {value!r}")
        model.info.setdefault("card", {})[key] = value


def _write(model: Any, folder: Path, repo_id: str, format: str, options: dict) -> None:
    if format == "anycl":
        model.save(str(folder))
        write_model_files(model, str(folder), folder=repo_id, public=True)  # the cards as the repository shows them
        return
    registry.export(model, format, str(folder), **options)
    kinds = [kind for name, kind in CARD_KINDS.items() if (folder / name).is_file()]
    if kinds and (folder / "README.md").is_file():
        modality = options.get("modality") or (next(iter(model.towers)) if len(model.towers) == 1 else None)
        if kinds[0] == "sentence-transformers" and modality is None:
            modality = next((n for n, t in model.towers.items() if getattr(t.encoder, "st", None) is not None), None)
        write_card(model, str(folder), kinds[0], modality, folder=repo_id)


def push_to_hub(
    model: Any,
    repo_id: str,
    *,
    format: str = "anycl",
    private: Optional[bool] = None,
    token: Optional[str] = None,
    exist_ok: bool = True,
    commit_message: Optional[str] = None,
    revision: Optional[str] = None,
    create_pr: bool = False,
    license: Optional[str] = None,
    language: Optional[Any] = None,
    **options: Any,
) -> str:
    """Upload ``model`` to the Hub repository ``repo_id`` (``"user/name"``); see the module's docstring.
    ``format``: ``"anycl"`` or an export format (``anycl.export.names()``), with the export's ``options``
    (e.g. ``modality=``). ``license``/``language`` go into the card (and stay in ``model.info["card"]``)."""
    if not isinstance(repo_id, str) or not is_hub_id(repo_id):
        raise ConfigError(
            f"repo_id={repo_id!r} is not a Hub repository id: give 'user/name' or 'org/name' (and not the name of "
            f"a local folder)"
        )
    if format != "anycl":
        try:
            registry.get(format)
        except UnknownNameError:
            raise ConfigError(
                f"format={format!r} is not one anycl writes; choose 'anycl' or one of {registry.names()}"
            ) from None
    set_card_fields(model, license, language)
    api = _api(token)
    with tempfile.TemporaryDirectory(prefix="anycl-push-") as tmp:
        folder = Path(tmp) / repo_id.split("/")[1]
        _write(model, folder, repo_id, format, options)
        api.create_repo(repo_id, private=private, exist_ok=exist_ok, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message=commit_message or f"Upload {format} model with anycl",
            revision=revision,
            create_pr=create_pr,
        )
    return str(getattr(commit, "commit_url", None) or commit)


def download(repo_id: str, revision: Optional[str] = None) -> str:
    """The local folder of the Hub repository ``repo_id`` (downloaded, or from the cache when offline)."""
    try:
        from huggingface_hub import snapshot_download  # lazy: only loading by Hub id needs it
    except ImportError as exc:  # pragma: no cover
        raise ConfigError("loading by Hub id needs the huggingface_hub package") from exc
    try:
        return str(snapshot_download(repo_id, revision=revision, repo_type="model"))
    except Exception as exc:  # noqa: BLE001 - offline and not cached, unknown repo, no access: one clear message
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        raise ConfigError(
            f"{repo_id!r} is not a local folder, and the Hub repository of that name could not be read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            + ("; HF_HUB_OFFLINE is set and it is not in the local cache" if offline else "")
        ) from exc
