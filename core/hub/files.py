"""Fetch a named weight file into torch.hub's cache (or the Hugging Face hub's), checked, and read it.

Files go to ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME``), as ``torch.hub.load_state_dict_from_url``
puts them: written to a ``.partial`` file beside the target with torch.hub's progress bar, then renamed; a name
with a SHA-256 prefix (``swin_t-704ceda3.pth``, torch.hub's ``HASH_REGEX``) must match it. Unlike
``torch.hub.download_url_to_file``, which keeps a transfer that ends before its Content-Length as complete, a short
transfer is an error and leaves nothing. Hub entries go through ``huggingface_hub`` (its cache, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE``). ``SWIN_SUITE_WEIGHTS_MIRROR=http://host:port`` replaces the scheme and host of every
registered url (a hub file's: ``/<repo>/resolve/main/<file>``), for clusters without internet access.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import uuid
from http.client import HTTPException
from typing import Any, Mapping
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit
from urllib.request import Request, urlopen

import torch
import torch.hub

from .registry import HubError, Pretrained, get_pretrained

MIRROR_ENV = "SWIN_SUITE_WEIGHTS_MIRROR"
HF_URL = "https://huggingface.co"
CHUNK = 1 << 20
TIMEOUT_S = 60.0
_verified: set[tuple[str, int, int]] = set()


def cache_dir() -> str:
    """torch.hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints`` unless ``torch.hub.set_dir`` moved it)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def cache_path(name: str) -> str:
    """Where the file of the weights ``name`` lives (or is to be put by hand)."""
    return os.path.join(cache_dir(), get_pretrained(name).file_name)


def hash_prefix(file_name: str) -> str | None:
    """The SHA-256 prefix a file name carries (torchvision's ``name-<hex>.pth``), or None."""
    m = torch.hub.HASH_REGEX.search(file_name)
    return m.group(1) if m and m.group(1) else None


def hub_url(entry: Pretrained, filename: str | None = None) -> str:
    """The download url of a hub entry's file (``https://huggingface.co/<repo>/resolve/main/<file>``)."""
    return f"{HF_URL}/{entry.hf_hub_id}/resolve/main/{filename or entry.hf_filename or 'model.safetensors'}"


def mirrored(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$SWIN_SUITE_WEIGHTS_MIRROR`` (path and query kept)."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    m, u = urlsplit(mirror if "://" in mirror else f"http://{mirror}"), urlsplit(url)
    return urlunsplit((m.scheme, m.netloc, m.path.rstrip("/") + u.path, u.query, ""))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _hash_error(file: str, digest: str, prefix: str, where: str) -> HubError:
    return HubError(f"refused {file}: its SHA-256 {digest} does not start with {prefix}, the hash its name "
                    f"carries; {where}")


def _check_cached(path: str) -> None:
    """Verify a cached file against the hash prefix of its name (once per process); a bad one is deleted."""
    prefix = hash_prefix(os.path.basename(path))
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if prefix is None or key in _verified:
        return
    digest = _sha256(path)
    if not digest.startswith(prefix):
        os.remove(path)
        raise _hash_error(path, digest, prefix, "deleted it from the cache")
    _verified.add(key)


def _offline(url: str, dst: str, why: str) -> HubError:
    return HubError(f"cannot download {url} ({why}); put the file at {dst} by hand, or set {MIRROR_ENV} to a "
                    "server that has it")


def fetch(url: str, dst: str, *, progress: bool = True) -> str:
    """Download ``url`` to ``dst`` through a ``.partial`` file (torch.hub's way); check the Content-Length and the
    hash prefix of ``dst``'s name; on any failure nothing is left."""
    from tqdm import tqdm

    os.makedirs(os.path.dirname(dst), exist_ok=True)
    prefix = hash_prefix(os.path.basename(dst))
    tmp = f"{dst}.{uuid.uuid4().hex}.partial"
    try:
        try:
            with urlopen(Request(url, headers={"User-Agent": "torch.hub"}), timeout=TIMEOUT_S) as u, \
                    open(tmp, "wb") as f:
                size = u.headers.get("Content-Length")
                total = int(size) if size and size.isdigit() else None
                sha, got = hashlib.sha256(), 0
                with tqdm(total=total, disable=not progress, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=os.path.basename(dst)) as bar:
                    while chunk := u.read(CHUNK):
                        f.write(chunk)
                        sha.update(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
        except HTTPError as e:
            raise _offline(url, dst, f"HTTP {e.code} {e.reason}") from None
        except (TimeoutError, URLError, HTTPException, ConnectionError) as e:
            why = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
            raise _offline(url, dst, str(why).splitlines()[0] if str(why) else type(e).__name__) from None
        if total is not None and got != total:
            raise HubError(f"download of {url} stopped after {got} of {total} bytes; nothing was cached, run again")
        digest = sha.hexdigest()
        if prefix and not digest.startswith(prefix):
            raise _hash_error(os.path.basename(dst), digest, prefix, f"downloaded from {url}, not cached")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dst


def _hub_download(entry: Pretrained, dst: str | None) -> str:
    """The entry's file through huggingface_hub (timm's copies: model.safetensors, else pytorch_model.bin)."""
    from huggingface_hub import constants, hf_hub_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    names = [entry.hf_filename] if entry.hf_filename else ["model.safetensors", "pytorch_model.bin"]
    err: Exception | None = None
    for filename in names:
        try:
            return hf_hub_download(entry.hf_hub_id, filename, local_files_only=offline)
        except Exception as e:  # noqa: BLE001  (huggingface_hub's errors differ between versions)
            err = e
            if "EntryNotFound" not in type(e).__name__:
                break
    why = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}".rstrip(": ")
    by_hand = f"; or put the file at {dst} by hand, or set {MIRROR_ENV} to a server that has it" if dst else ""
    raise HubError(f"cannot download {hub_url(entry, names[0])} from the Hugging Face hub ({why}); its cache is "
                   f"{constants.HF_HUB_CACHE} (HF_HUB_OFFLINE=1 reads only that){by_hand}")


def download(name: str, *, source: str | None = None, progress: bool = True) -> str:
    """The local path of the weights ``name``, downloaded on first use. ``source``: ``"url"`` (the registered
    url), ``"hf"`` (the Hugging Face hub copy, e.g. timm's safetensors), or None (the url when there is one)."""
    entry = get_pretrained(name)
    if source not in (None, "url", "hf"):
        raise ValueError(f"source must be 'url', 'hf' or None, got {source!r}")
    if source == "hf" and not entry.hf_hub_id:
        raise HubError(f"{entry.name} is not on the Hugging Face hub; its url: {entry.url}")
    if source == "url" and not entry.url:
        raise HubError(f"{entry.name} has no url; it is on the Hugging Face hub: {entry.hf_hub_id}")
    dst = os.path.join(cache_dir(), entry.file_name)
    if source == "hf" and entry.url:  # the hub copy of a file that has a url: the hub's cache only
        return _hub_download(entry, None)
    if os.path.exists(dst):
        _check_cached(dst)
        return dst
    url = entry.url or hub_url(entry)
    if os.environ.get(MIRROR_ENV, "").strip():
        return fetch(mirrored(url), dst, progress=progress)
    if entry.url is None:
        return _hub_download(entry, dst)
    if entry.manual:
        raise HubError(f"{entry.name}: {url} is a page no program can download from; download the file by hand "
                       f"and put it at {dst}")
    return fetch(url, dst, progress=progress)


def read_checkpoint(path: str) -> Mapping[str, Any]:
    """A weight file's contents: safetensors, or ``torch.load(weights_only=True)``; a file that also pickles other
    objects (a training config) is refused with one line naming them (nothing of it runs)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            names = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path)) or "?"
        except Exception:  # noqa: BLE001 -- only for the message
            names = "?"
        raise HubError(f"{path} pickles objects other than tensors and plain containers ({names}): refused without "
                       f"running them; if you trust the file, allow them with torch.serialization.add_safe_globals "
                       f"or save its state dict alone") from None
