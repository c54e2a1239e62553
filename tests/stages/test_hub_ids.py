"""Hugging Face model ids and official SAM names as weights settings, resolved offline.

A local Hugging Face cache (``models--org--name/blobs`` + ``snapshots/<rev>/`` symlinks +
``refs/main``) and a torch hub directory are built under tmp; nothing touches the network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from stages.config import load_config
from stages.weights_resolve import WeightsNotFound, resolve_detector_dir, resolve_sam_checkpoint
from tests.tiny_gdino import save_tiny_gdino

REPO = "IDEA-Research/grounding-dino-base"
REV = "0123456789abcdef0123456789abcdef01234567"
PARTS = ["arm", "back", "leg", "seat", "wheel"]  # Chair


def hf_cache(root: Path, repo: str = REPO, rev: str = REV, seed: int = 0) -> Path:
    """A Hugging Face hub cache holding a tiny Grounding DINO, laid out as huggingface_hub writes it
    (content in blobs/<sha256>, relative symlinks in snapshots/<rev>/, refs/main = rev)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    snap = save_tiny_gdino(folder / "snapshots" / rev, PARTS, image_size=96, seed=seed)
    (folder / "blobs").mkdir(parents=True)
    for f in sorted(snap.iterdir()):
        blob = folder / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        f.replace(blob)
        f.symlink_to(os.path.relpath(blob, snap))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(rev)
    return snap


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_CACHE and TORCH_HOME under tmp, offline."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HOME", raising=False)
    return tmp_path


def test_a_hub_id_resolves_to_its_snapshot_in_the_local_cache(offline):
    snap = hf_cache(offline / "hf")
    rw = resolve_detector_dir(REPO)
    assert rw.path == snap and rw.source == "huggingface" and rw.revision == REV
    assert (rw.path / "model.safetensors").is_symlink() and (rw.path / "config.json").is_file()
    assert resolve_detector_dir(f"{REPO}@{REV}").path == snap  # a pinned revision
    # the model loads through detect's own loader (files are symlinks into blobs/)
    from pipeline.detect.grounding_dino import load_grounding_dino

    model, _ = load_grounding_dino(rw.path)
    assert model.config.d_model == 32


def test_a_local_directory_wins_over_a_hub_id_and_paths_pass_through(offline, monkeypatch):
    local = save_tiny_gdino(offline / "IDEA-Research" / "grounding-dino-base", PARTS, image_size=96)
    monkeypatch.chdir(offline)
    rw = resolve_detector_dir(REPO)  # a relative directory of that name exists: it is used
    assert rw.source == "local" and rw.path.resolve() == local.resolve()
    assert resolve_detector_dir("/nowhere/gdino").path == Path("/nowhere/gdino")  # the loader names a missing absolute path


def test_a_missing_hub_id_says_where_to_put_the_files_and_how_to_fetch_them(offline):
    with pytest.raises(WeightsNotFound) as err:
        resolve_detector_dir(REPO)
    msg = str(err.value)
    folder = offline / "hf" / "models--IDEA-Research--grounding-dino-base"
    assert msg.startswith("detect.weights_dir: 'IDEA-Research/grounding-dino-base'")
    assert f"{folder}/snapshots/<revision>/" in msg and f"{folder}/refs/main" in msg
    assert f"HF_HUB_CACHE={offline / 'hf'} hf download {REPO}" in msg and "Nothing is downloaded at run time" in msg
    hf_cache(offline / "hf")
    with pytest.raises(WeightsNotFound, match="refs/v9"):  # a revision that is not cached
        resolve_detector_dir(f"{REPO}@v9")


def test_hf_home_and_a_relative_looking_missing_directory(offline, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(offline / "home"))
    snap = hf_cache(offline / "home" / "hub")
    assert resolve_detector_dir(REPO).path == snap
    with pytest.raises(WeightsNotFound, match="'models/gdino' is not a local directory"):
        resolve_detector_dir("models/gdino")  # a typo in a local path gets both readings named


def test_a_sam_name_resolves_in_the_torch_hub_directory(offline):
    with pytest.raises(WeightsNotFound) as err:
        resolve_sam_checkpoint("sam_vit_b")
    msg = str(err.value)
    folder = offline / "torch" / "hub" / "checkpoints"
    assert f"directory {folder}" in msg and "put sam_vit_b_01ec64.pth in" in msg
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth" in msg
    folder.mkdir(parents=True)
    (folder / "sam_vit_b_01ec64.pth").write_bytes(b"weights")
    rw = resolve_sam_checkpoint("sam_vit_b")
    assert rw.path == folder / "sam_vit_b_01ec64.pth" and rw.source == "torch_hub"
    assert resolve_sam_checkpoint("/w/sam.pth").path == Path("/w/sam.pth")


def test_a_sam_name_must_match_the_model_type(tmp_path, write_params, invoke):
    p = write_params(tmp_path, segment={"mode": "sam", "sam_checkpoint": "sam_vit_l"})
    res = invoke(["segment", "--params", p, "--cache", tmp_path / "cache"])
    assert res.exit_code == 2 and "sam_checkpoint sam_vit_l is a vit_l model but sam_model_type is vit_b" in res.output
    assert "Traceback" not in res.output
    assert (
        load_config(
            write_params(tmp_path, segment={"mode": "sam", "sam_checkpoint": "sam_vit_l", "sam_model_type": "vit_l"})
        ).segment.sam_checkpoint
        == "sam_vit_l"
    )


def test_stages_refuse_uncached_ids_with_exit_2_before_touching_the_cache(offline, write_params, invoke):
    cache = offline / "cache"
    p = write_params(offline, detect={"backend": "grounding_dino", "weights_dir": REPO})
    res = invoke(["detect", "--params", p, "--cache", cache])
    assert res.exit_code == 2 and "models--IDEA-Research--grounding-dino-base" in res.output and "hf download" in res.output
    p = write_params(offline, segment={"mode": "sam", "sam_checkpoint": "sam_vit_b"})
    res = invoke(["segment", "--params", p, "--cache", cache])
    assert res.exit_code == 2 and str(offline / "torch" / "hub" / "checkpoints") in res.output and "sam_vit_b_01ec64.pth" in res.output
    p = write_params(offline, adapt={"enabled": True, "base_weights_dir": "org/nothing"}, detect={"backend": "grounding_dino"})
    res = invoke(["adapt-detector", "--params", p, "--cache", cache, "--metrics", offline / "metrics"])
    assert res.exit_code == 2 and res.output.count("adapt.base_weights_dir: 'org/nothing'") == 1 and "models--org--nothing" in res.output
    assert not cache.exists() and not (offline / "metrics").exists()


def test_doctor_loads_a_hub_id_from_the_local_cache(offline, write_params, invoke):
    hf_cache(offline / "hf")
    p = write_params(offline, detect={"backend": "grounding_dino", "weights_dir": REPO})
    res = invoke(["doctor", "--params", p])
    assert f"{REPO} loads" in res.output


def test_the_key_does_not_depend_on_where_the_hub_cache_lives(offline, monkeypatch):
    from stages.detector_weights import weights_key

    hf_cache(offline / "hf")
    shutil.copytree(offline / "hf", offline / "elsewhere", symlinks=True)
    from stages.config import PipelineConfig

    cfg = PipelineConfig.model_validate({"detect": {"backend": "grounding_dino", "weights_dir": REPO}})
    here = weights_key(cfg, "Chair")
    monkeypatch.setenv("HF_HUB_CACHE", str(offline / "elsewhere"))
    assert weights_key(cfg, "Chair") == here and here["detector_weights"]["digest"] != "<missing>"
    shutil.rmtree(offline / "elsewhere")
    hf_cache(offline / "elsewhere", seed=1)  # other weights under the same id: another key
    assert weights_key(cfg, "Chair") != here


def test_detect_runs_from_a_hub_id_and_records_the_id_not_the_cache_path(offline, write_params, run):
    from stages.detector_weights import dir_digest
    from stages.provenance import provenance
    from stages.store import CategoryStore

    snap = hf_cache(offline / "hf")
    tiny = {"data": {"n_fewshot": 1, "n_val": 0, "n_test": 0, "n_points": 1500}, "render": {"image_size": 64, "views": [[10, 0]]}}
    p = write_params(offline, detect={"backend": "grounding_dino", "weights_dir": REPO, "score_threshold": 0.0, "max_per_view": 3}, **tiny)
    for stage in ("ingest", "render", "detect"):
        run([stage, "--params", p, "--cache", offline / "cache"])
    det = CategoryStore(offline / "cache", "detect", "Chair")
    oid = det.object_ids()[0]
    assert det.attrs(oid)["weights"] == {"spec": REPO, "digest": dir_digest(snap)}
    rec = provenance(load_config(p), [])["weights"]
    assert rec == [
        {
            "role": "detector",
            "setting": "detect.weights_dir",
            "spec": REPO,
            "path": str(snap),
            "source": "huggingface",
            "revision": REV,
            "digest": dir_digest(snap),
        }
    ]
