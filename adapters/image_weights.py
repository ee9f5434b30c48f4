"""Where a named image backbone's pretrained weights are: the file in the local cache, downloaded only when
downloads are on.

- torchvision and timm weights given by URL live in torch's hub cache, ``$TORCH_HOME/hub/checkpoints/<file>``
  (:func:`torch.hub.get_dir`), under the URL's file name;
- timm weights on the Hugging Face Hub, and ``transformers`` models, live in the Hugging Face cache
  (``$HF_HOME/hub``, ``huggingface_hub.constants.HF_HUB_CACHE``).

Downloads are off when ``HF_HUB_OFFLINE=1`` (the switch anycl's other pretrained models follow): then a file that
is not in the cache is a :class:`~anycl.errors.ConfigError` naming it and where it is looked for.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence
from urllib.parse import urlparse

from anycl.errors import ConfigError


def offline() -> bool:
    """Whether downloads are off (``HF_HUB_OFFLINE``, read when asked: a test or a user may set it late)."""
    from huggingface_hub import constants  # lazy: huggingface_hub: only where pretrained weights are looked up

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache() -> str:
    """The Hugging Face hub cache folder in use."""
    from huggingface_hub import constants  # lazy: as above

    return str(constants.HF_HUB_CACHE)


def _url_file(url: str) -> str:
    import torch.hub  # lazy: torch.hub: only to find its cache folder

    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def url_weights(url: str, what: str) -> str:
    """The local file of the weights at ``url`` (torch's hub cache), downloaded there when it is missing and
    downloads are on."""
    path = _url_file(url)
    if os.path.isfile(path):
        return path
    if offline():
        raise ConfigError(
            f"the pretrained weights of {what} are not in the local cache: {path} is missing, and downloads are off "
            f"(HF_HUB_OFFLINE=1). Download {url} to that file, or pass encoder_options={{'pretrained': False}} to "
            f"start from scratch"
        )
    import torch.hub  # lazy: torch.hub: the download

    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, path, progress=False)
    except Exception as exc:  # noqa: BLE001 - no network, a proxy, a 404: said with the file to place by hand
        raise ConfigError(
            f"cannot download the pretrained weights of {what} from {url} ({' '.join(str(exc).split())[:200]}); "
            f"place the file at {path}, or pass encoder_options={{'pretrained': False}}"
        ) from None
    return path


def hub_weights(repo: str, files: Sequence[str], what: str) -> str:
    """The first of ``files`` of the Hub repository ``repo`` found in the Hugging Face cache, else downloaded
    (when downloads are on)."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache  # lazy: as above

    for name in files:
        try:
            found = try_to_load_from_cache(repo, name, cache_dir=hub_cache())
        except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
            found = None
        if isinstance(found, str):
            return found
    if offline():
        raise ConfigError(
            f"the pretrained weights of {what} are not in the local Hugging Face cache ({hub_cache()}): it lacks "
            f"{' or '.join(files)} of {repo}, and downloads are off (HF_HUB_OFFLINE=1). Download them once where there "
            f"is a network (hf download {repo}), or pass encoder_options={{'pretrained': False}} to start from scratch"
        )
    last: Optional[Exception] = None
    for name in files:
        try:
            return str(hf_hub_download(repo, name, cache_dir=hub_cache()))
        except Exception as exc:  # noqa: BLE001 - the next file name, then a clear error
            last = exc
    raise ConfigError(
        f"cannot download the pretrained weights of {what} ({' or '.join(files)} of {repo}: "
        f"{' '.join(str(last).split())[:200]}); pass encoder_options={{'pretrained': False}} to start from scratch"
    )
