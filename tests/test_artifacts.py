"""Artifacts: built-in types, content versions, user subclasses and their MLMD types."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _type_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --- built-in types ------------------------------------------------------------------------


def test_builtin_types_are_registered_with_their_mlmd_base_types(store: lineage.Store) -> None:
    store.put(lineage.Dataset(content=b"d", name="d"))
    store.put(lineage.Model(content=b"m", name="m"))
    store.put(lineage.Metrics({"acc": 0.5}, name="e"))
    store.put(lineage.Config(content="lr: 1", name="c"))
    base = pb.ArtifactType.SystemDefinedBaseType
    for name, expected in [("Dataset", "DATASET"), ("Model", "MODEL"), ("Metrics", "METRICS")]:
        t = store.mlmd.get_artifact_type(name)
        assert base.Name(t.base_type) == expected
        assert t.properties["version"] == pb.INT
        assert t.properties["fingerprint"] == pb.STRING
        assert t.properties["previous_version"] == pb.INT
    assert not store.mlmd.get_artifact_type("Config").HasField("base_type")


def test_dataset_from_a_file_records_uri_fingerprint_and_properties(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    f = write_file("iris.csv", b"a,b\n1,2\n")
    d = store.put(lineage.Dataset(f, name="iris", split="train"))
    assert d.id is not None and d.version == 1 and d.previous_version is None
    assert (d.type_name, d.name, d.uri) == ("Dataset", "iris", str(f))
    assert d.fingerprint == _sha(b"a,b\n1,2\n")
    assert d.properties == {"split": "train"}
    got = store.get(d.id)
    assert isinstance(got, lineage.Dataset)
    assert (got.uri, got.fingerprint, got.properties) == (d.uri, d.fingerprint, {"split": "train"})
    raw = store.mlmd.get_artifacts_by_id([d.id])[0]
    assert raw.name == "iris@1"
    assert raw.properties["fingerprint"].string_value == d.fingerprint
    assert raw.custom_properties["split"].string_value == "train"


def test_name_defaults_to_the_file_name(write_file: Callable[..., Path]) -> None:
    f = write_file("params.yaml", "lr: 0.1\n")
    assert lineage.Config(f).name == "params.yaml"
    assert lineage.Dataset(str(f)).uri == str(f)


def test_metrics_values_become_properties(store: lineage.Store) -> None:
    m = store.put(lineage.Metrics({"acc": 0.93, "f1": 0.91}, name="eval"))
    got = store.get("eval")
    assert isinstance(got, lineage.Metrics)
    assert got.values == {"acc": 0.93, "f1": 0.91}
    assert got.fingerprint == m.fingerprint is not None


def test_remote_uri_has_no_fingerprint_unless_given(store: lineage.Store) -> None:
    a = store.put(lineage.Dataset("s3://bucket/iris.csv", name="remote"))
    assert a.fingerprint is None and a.uri == "s3://bucket/iris.csv"
    b = store.put(lineage.Dataset("s3://bucket/iris.csv", name="remote2",
                                  fingerprint="sha256:" + "0" * 64))
    assert b.fingerprint == "sha256:" + "0" * 64


def test_artifact_without_uri_or_content_is_refused() -> None:
    with pytest.raises(lineage.ArtifactError, match="needs name"):
        lineage.Dataset(content=b"x")
    with pytest.raises(lineage.ArtifactError, match="set by lineage"):
        lineage.Dataset(content=b"x", name="x", version=3)


def test_missing_file_is_a_fingerprint_error_and_writes_nothing(
    store: lineage.Store, tmp_path: Path
) -> None:
    with pytest.raises(lineage.FingerprintError, match="no such file"):
        store.put(lineage.Dataset(tmp_path / "missing.csv", name="gone"))
    assert store.artifacts() == []


def test_unstorable_property_is_refused_and_writes_nothing(store: lineage.Store) -> None:
    with pytest.raises(lineage.ArtifactError, match="property 'obj'"):
        store.put(lineage.Dataset(content=b"x", name="x", obj=object()))
    assert store.artifacts() == []


# --- versions ------------------------------------------------------------------------------


def test_same_content_same_name_is_the_same_record(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    f = write_file("d.csv", "1\n")
    a = store.put(lineage.Dataset(f, name="d"))
    b = store.put(lineage.Dataset(f, name="d"))
    c = store.put(lineage.Dataset(content=b"1\n", name="d"))  # same bytes in memory
    assert a.id == b.id == c.id and b.version == 1
    assert len(store.artifacts()) == 1


def test_new_content_is_the_next_version_linked_to_the_previous(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    f = write_file("d.csv", "1\n")
    v1 = store.put(lineage.Dataset(f, name="d"))
    f.write_text("2\n")
    v2 = store.put(lineage.Dataset(f, name="d"))
    f.write_text("3\n")
    v3 = store.put(lineage.Dataset(f, name="d"))
    assert [v.version for v in (v1, v2, v3)] == [1, 2, 3]
    assert v2.previous_version == v1.id and v3.previous_version == v2.id
    raw = store.mlmd.get_artifacts_by_id([v3.id])[0]
    assert raw.properties["previous_version"].int_value == v2.id  # a property, in MLMD
    assert [a.version for a in store.artifacts(name="d")] == [1, 2, 3]
    assert store.get("d").id == v3.id


def test_returning_to_old_content_returns_the_old_record(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    f = write_file("d.csv", "A\n")
    a1 = store.put(lineage.Dataset(f, name="d"))
    f.write_text("B\n")
    b = store.put(lineage.Dataset(f, name="d"))
    f.write_text("A\n")
    a2 = store.put(lineage.Dataset(f, name="d"))
    assert (a1.version, b.version, a2.version) == (1, 2, 1)
    assert a2.id == a1.id
    assert len(store.artifacts(name="d")) == 2
    # a bare name is the content most recently recorded under it (A again), and the
    # versions stay as they were
    assert store.get("d").id == a1.id
    assert store.get("d@2").id == b.id


def test_same_content_under_another_name_is_another_record(store: lineage.Store) -> None:
    a = store.put(lineage.Dataset(content=b"x", name="a"))
    b = store.put(lineage.Dataset(content=b"x", name="b"))
    assert a.id != b.id and a.fingerprint == b.fingerprint and b.version == 1


def test_many_versions_resolve_latest(store: lineage.Store) -> None:
    ids = [store.put(lineage.Metrics({"i": i}, name="m")).id for i in range(11)]
    assert store.get("m").id == ids[-1] and store.get("m").version == 11
    assert store.get("m@6").id == ids[5]


# --- user subclasses -----------------------------------------------------------------------


def test_user_subclass_with_typed_properties(store: lineage.Store) -> None:
    name = _type_name("Embeddings")

    class Embeddings(lineage.Artifact, type_name=name, base_type="DATASET"):
        dim: int
        encoder: str
        normalised: bool | None
        scale: float

    e = store.put(Embeddings(content=b"vec", name="emb", dim=384, encoder="minilm",
                             normalised=True, scale=0.5, note="custom"))
    t = store.mlmd.get_artifact_type(name)
    assert pb.ArtifactType.SystemDefinedBaseType.Name(t.base_type) == "DATASET"
    assert {k: t.properties[k] for k in ("dim", "encoder", "normalised", "scale")} == {
        "dim": pb.INT, "encoder": pb.STRING, "normalised": pb.BOOLEAN, "scale": pb.DOUBLE}
    raw = store.mlmd.get_artifacts_by_id([e.id])[0]
    assert raw.properties["dim"].int_value == 384
    assert raw.custom_properties["note"].string_value == "custom"
    got = store.get(e.id)
    assert isinstance(got, Embeddings)
    assert got.dim == 384 and got.encoder == "minilm" and got.properties["note"] == "custom"


def test_bad_property_annotation_is_refused_at_class_creation() -> None:
    with pytest.raises(lineage.ArtifactError, match="must be int, float, str, bool"):
        class Bad(lineage.Artifact, type_name=_type_name("Bad")):
            blob: bytes
    with pytest.raises(lineage.ArtifactError, match="kept by lineage"):
        class Bad2(lineage.Artifact, type_name=_type_name("Bad")):
            version: int
    with pytest.raises(lineage.ArtifactError, match="base_type"):
        class Bad3(lineage.Artifact, base_type="PICTURE"):
            pass


def _declare(type_name: str, **annotations: type) -> type[lineage.Artifact]:
    return type(type_name, (lineage.Artifact,), {"__annotations__": annotations},
                type_name=type_name)


@pytest.mark.parametrize("same_store_object", [True, False])
def test_later_class_version_adding_a_property_upgrades_the_type(
    store_uri: str, same_store_object: bool
) -> None:
    name = _type_name("Features")
    store = lineage.connect(store_uri)
    v1 = _declare(name, rows=int)
    first = store.put(v1(content=b"1", name="f", rows=10))
    if not same_store_object and store_uri != ":memory:":
        store = lineage.connect(store_uri)
    v2 = _declare(name, rows=int, source=str)
    second = store.put(v2(content=b"2", name="f", rows=20, source="crm"))
    t = store.mlmd.get_artifact_type(name)
    assert dict(t.properties)["source"] == pb.STRING and dict(t.properties)["rows"] == pb.INT
    assert store.mlmd.get_artifacts_by_id([second.id])[0].properties["source"].string_value == "crm"
    assert store.get(first.id).properties == {"rows": 10}
    assert second.version == 2


def test_changed_property_type_is_a_type_conflict(store: lineage.Store) -> None:
    name = _type_name("Table")
    store.put(_declare(name, rows=int)(content=b"1", name="t", rows=1))
    changed = _declare(name, rows=str)
    with pytest.raises(lineage.TypeConflict) as info:
        store.put(changed(content=b"2", name="t", rows="many"))
    assert name in str(info.value) and "new type name" in str(info.value)
    assert isinstance(info.value, lineage.StoreError)
    assert [a.version for a in store.artifacts(type=name)] == [1]


def test_changed_base_type_is_a_type_conflict(store: lineage.Store) -> None:
    name = _type_name("Thing")
    store.put(type(name, (lineage.Artifact,), {}, type_name=name, base_type="MODEL")(
        content=b"1", name="t"))
    other = type(name, (lineage.Artifact,), {}, type_name=name, base_type="DATASET")
    with pytest.raises(lineage.TypeConflict):
        store.put(other(content=b"2", name="t"))


def test_artifacts_of_unknown_types_read_back_as_plain_artifacts(store: lineage.Store) -> None:
    type_id = store.mlmd.put_artifact_type(pb.ArtifactType(name=_type_name("tfx_Examples")))
    [aid] = store.mlmd.put_artifacts([pb.Artifact(type_id=type_id, uri="/x", name="ex")])
    got = store.get(aid)
    assert type(got) is lineage.Artifact
    assert (got.name, got.uri, got.version, got.fingerprint) == ("ex", "/x", None, None)


def test_new_content_after_a_return_is_current_again(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    f = write_file("t.csv", "A\n")
    a = store.put(lineage.Dataset(f, name="t"))
    f.write_text("B\n")
    store.put(lineage.Dataset(f, name="t"))
    f.write_text("A\n")
    store.put(lineage.Dataset(f, name="t"))
    assert store.get("t").id == a.id
    f.write_text("C\n")
    c = store.put(lineage.Dataset(f, name="t"))
    assert c.version == 3 and store.get("t").id == c.id
    f.write_text("B\n")  # back to v2: the newest is v3, but B is the current content
    assert store.put(lineage.Dataset(f, name="t")).version == 2
    assert store.get("t").version == 2


def test_another_writer_returning_to_old_content_is_seen(sqlite_uri: str, tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    reader, writer = lineage.connect(sqlite_uri), lineage.connect(sqlite_uri)
    f.write_text("A\n")
    writer.put(lineage.Dataset(f, name="t"))
    f.write_text("B\n")
    writer.put(lineage.Dataset(f, name="t"))
    assert reader.get("t").version == 2  # the reader now knows version 2 is the newest
    f.write_text("A\n")
    writer.put(lineage.Dataset(f, name="t"))
    assert reader.get("t").version == 1
