"""Registry folder: versions, metadata, promote, roll back, loading, concurrent saves."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from allocator.errors import InputError
from models.registry import ModelRegistry
from models.scoring import score_pairs
from models.train import train_model
from tests.models.model_support import toy_history


@pytest.fixture(scope="module")
def trained():
    history, partners = toy_history(400)
    return train_model(history, partners)


def _save(registry: ModelRegistry, result, note: str) -> str:
    version, folder = registry.create_version()
    registry.save(result.model, {"parent": registry.latest(), "note": note,
                                 "metrics": result.metrics}, folder, version)
    return version


def test_versions_are_listed_with_metadata_and_parent(tmp_path, trained):
    registry = ModelRegistry(tmp_path / "reg")
    assert registry.list() == [] and registry.promoted() is None
    first = _save(registry, trained, "a")
    second = _save(registry, trained, "b")
    assert (first, second) == ("v0001", "v0002")
    listed = registry.list()
    assert [v.version for v in listed] == ["v0001", "v0002"]
    assert listed[1].parent == "v0001" and listed[1].metrics["auc"] == trained.metrics["auc"]
    meta = json.loads((tmp_path / "reg/versions/v0002/metadata.json").read_text())
    assert meta["version"] == "v0002" and meta["note"] == "b" and "created_at" in meta


def test_promote_rollback_and_load(tmp_path, trained):
    registry = ModelRegistry(tmp_path)
    for note in "abc":
        _save(registry, trained, note)
    with pytest.raises(InputError, match=r"no model version is promoted .*v0001, v0002, v0003"):
        registry.load()
    registry.promote("v0001")
    registry.promote("v0003")
    registry.promote("v0003")  # promoting the promoted version changes nothing
    assert registry.promoted() == "v0003"
    assert registry.rollback() == "v0001"
    assert registry.promoted() == "v0001"
    with pytest.raises(InputError, match="nothing to roll back to"):
        registry.rollback()
    model = registry.load()
    assert model.version == "v0001" and model.metadata["note"] == "a"
    assert registry.load("v0002").metadata["note"] == "b"


def test_unknown_version_is_named(tmp_path, trained):
    registry = ModelRegistry(tmp_path)
    _save(registry, trained, "a")
    with pytest.raises(InputError,
                       match=r"value 'v0009': no such model version \(versions: v0001\)"):
        registry.promote("v0009")
    with pytest.raises(InputError, match="no such model version"):
        registry.load("latest")


def test_incomplete_version_is_not_listed(tmp_path, trained):
    registry = ModelRegistry(tmp_path)
    _save(registry, trained, "a")
    (tmp_path / "versions" / "v0002").mkdir()  # a run that died before its metadata
    assert registry.version_names() == ["v0001"]
    assert _save(registry, trained, "c") == "v0003"  # the number is not reused


def test_concurrent_saves_get_distinct_versions(tmp_path, trained):
    registry = ModelRegistry(tmp_path)
    names: list[str] = []

    def claim() -> None:
        names.append(registry.create_version()[0])

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names) == [f"v{k:04d}" for k in range(1, 9)]


def test_loaded_model_scores_like_the_saved_one(tmp_path, trained):
    registry = ModelRegistry(tmp_path)
    registry.promote(_save(registry, trained, "a"))
    history, partners = toy_history(50, seed=3)
    pairs = history[["lead_id", "partner_id"]]
    expected = score_pairs(trained.model, pairs, history, partners)
    np.testing.assert_array_equal(score_pairs(registry.load(), pairs, history, partners), expected)
