"""Where a weights setting points: a local path, a Hugging Face model id, or a known SAM name.

Why: users name weights the way their tools do (``IDEA-Research/grounding-dino-base``,
``sam_vit_b``). The pipeline never downloads while it runs (cluster nodes have no network,
and a download in the middle of a run would make results depend on when it ran), so ids
resolve through the local caches only: the Hugging Face hub cache
(``models--org--name/snapshots/<revision>/``, read with ``local_files_only``) and the torch
hub checkpoints directory. A miss names the exact directory to fill and the command that
fetches the files on a machine with network.

The resolved *path* is recorded (provenance, dvc.yaml deps); only the *content digest* of the
files enters the cache keys, so a key does not depend on where a cache lives.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

#: Official segment-anything checkpoints (github.com/facebookresearch/segment-anything):
#: name accepted in ``segment.sam_checkpoint`` -> (file name, model type).
SAM_CHECKPOINTS: dict[str, tuple[str, str]] = {
    "sam_vit_b": ("sam_vit_b_01ec64.pth", "vit_b"),
    "sam_vit_l": ("sam_vit_l_0b3195.pth", "vit_l"),
    "sam_vit_h": ("sam_vit_h_4b8939.pth", "vit_h"),
}
SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
#: ``org/name`` or ``org/name@revision`` (revision: branch, tag or commit hash).
_HF_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[\w./-]+))?")


class WeightsNotFound(ValueError):
    """A weights setting resolves to nothing here; the message says where to put the files."""


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights setting and the local file or directory it stands for."""

    spec: str  # as written in params
    path: Path  # local file (SAM) or directory (Grounding DINO)
    source: str  # "local", "huggingface" or "torch_hub"
    revision: str | None = None  # Hugging Face snapshot (commit hash)

    def record(self) -> dict[str, str | None]:
        """JSON-ready description for provenance."""
        return {"spec": self.spec, "path": str(self.path), "source": self.source, "revision": self.revision}


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (huggingface_hub reads
    it once at import): HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def torch_hub_checkpoints() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (TORCH_HOME/hub/checkpoints; read at call time)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_id(spec: str) -> tuple[str, str | None] | None:
    """(repo id, revision) when ``spec`` is a Hugging Face model id and no local path of that
    name exists (a local directory always wins), else None."""
    if not spec or spec.startswith((".", "/", "~")) or Path(spec).exists():
        return None
    m = _HF_ID.fullmatch(spec)
    return (m["repo"], m["rev"]) if m else None


def resolve_hf(spec: str, setting: str) -> ResolvedWeights:
    """The snapshot directory of a Hugging Face model id in the local cache (never downloads)."""
    parsed = hub_id(spec)
    if parsed is None:
        raise WeightsNotFound(f"{setting}: {spec!r} is not a Hugging Face model id (org/name)")
    repo, rev = parsed
    cache = hf_cache_dir()
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo, revision=rev, cache_dir=cache, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - LocalEntryNotFoundError, a broken refs file, a bad revision: all "not here"
        folder = cache / f"models--{repo.replace('/', '--')}"
        raise WeightsNotFound(
            f"{setting}: {spec!r} is not a local directory, and Hugging Face model {repo}"
            f"{'@' + rev if rev else ''} is not in the local Hugging Face cache (looked for "
            f"{folder}/snapshots/<revision>/ via {folder}/refs/{rev or 'main'}; {type(exc).__name__}). Nothing is downloaded "
            f"at run time: on a machine with network run `HF_HUB_CACHE={cache} hf download {repo}"
            f"{' --revision ' + rev if rev else ''}` and copy {folder} here (or set HF_HUB_CACHE / HF_HOME to where it is)"
        ) from None
    return ResolvedWeights(spec, path, "huggingface", path.name)


def resolve_detector_dir(spec: str, setting: str = "detect.weights_dir") -> ResolvedWeights:
    """A Grounding DINO setting -> local directory: a path as given, or a hub id's snapshot.

    A path that does not exist and is no hub id comes back as is (the loader's own check then
    names it); a hub id missing from the cache raises :class:`WeightsNotFound`.
    """
    if hub_id(spec) is not None:
        return resolve_hf(spec, setting)
    return ResolvedWeights(spec, Path(spec), "local")


def sam_name(spec: str | None) -> str | None:
    """The known SAM name ``spec`` stands for (``sam_vit_b`` ...), unless a local file of that name exists."""
    return spec if spec in SAM_CHECKPOINTS and not Path(spec).exists() else None


def resolve_sam_checkpoint(spec: str, setting: str = "segment.sam_checkpoint") -> ResolvedWeights:
    """A SAM setting -> local checkpoint file: a path as given, or a known name looked up in
    the torch hub checkpoints directory (the file name the official download uses)."""
    name = sam_name(spec)
    if name is None:
        return ResolvedWeights(spec, Path(spec), "local")
    fname, _model_type = SAM_CHECKPOINTS[name]
    folder = torch_hub_checkpoints()
    path = folder / fname
    if not path.is_file():
        raise WeightsNotFound(
            f"{setting}: {spec!r} names the official SAM checkpoint {fname}, which is not in the torch hub "
            f"checkpoints directory {folder} (TORCH_HOME sets it). Nothing is downloaded at run time: put {fname} in {folder}; "
            f"on a machine with network: `curl -L -o {fname} {SAM_URL}{fname}`"
        )
    return ResolvedWeights(spec, path, "torch_hub")
