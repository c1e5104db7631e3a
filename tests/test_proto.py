"""Our own protobuf messages: generated code is current, builtin type declarations are true."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage._compat import protobuf_version
from lineage._proto.lineage.v1 import bundle_pb2, types_pb2
from lineage.typedecl import (
    artifact_type_decl,
    artifact_type_from_mlmd,
    builtin_types,
    context_type_from_mlmd,
)

ROOT = Path(__file__).resolve().parent.parent


def _gen_module() -> ModuleType:
    if protobuf_version()[0] >= 5:
        # grpcio-tools 1.62 (protoc 25, what lineage/_proto is generated with) pins
        # protobuf 4, so it cannot be installed on the ml-metadata 1.21 line (protobuf 6).
        # `make test` runs these on protobuf 4, where a missing grpc_tools fails them.
        pytest.skip("make proto needs protobuf 4 (grpcio-tools 1.62); this is protobuf 6")
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_proto", module)
    spec.loader.exec_module(module)
    return module


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".py", ".pyi")
    }


def test_committed_generated_code_is_current(tmp_path: Path) -> None:
    gen = _gen_module()
    gen.generate(tmp_path / "_proto")
    fresh = _tree(tmp_path / "_proto")
    committed = _tree(ROOT / "lineage" / "_proto")
    assert sorted(fresh) == sorted(committed), "files differ: run `make proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"lineage/_proto is stale ({stale}): run `make proto` and commit"
    assert any(name.endswith("bundle_pb2.py") for name in fresh)


def test_generation_is_deterministic(tmp_path: Path) -> None:
    gen = _gen_module()
    gen.generate(tmp_path / "a")
    gen.generate(tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_generated_code_imports_only_our_package_and_protobuf() -> None:
    for path in (ROOT / "lineage" / "_proto").rglob("*_pb2.py"):
        for line in path.read_text().splitlines():
            m = re.match(r"^from (\S+) import", line)
            if m:
                assert m.group(1).startswith(("google.protobuf", "lineage._proto")), line


def test_proto_files_are_self_contained() -> None:
    for path in (ROOT / "proto").rglob("*.proto"):
        imports = re.findall(r'^import "([^"]+)";', path.read_text(), flags=re.M)
        for imp in imports:
            assert imp.startswith(("google/protobuf/", "lineage/v1/")), (path, imp)
        assert "ml_metadata" not in path.read_text().replace(
            "ml_metadata/proto/metadata_store.proto", ""
        )


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (types_pb2.PropertyType, pb.PropertyType),
        (types_pb2.ArtifactTypeDecl.BaseType, pb.ArtifactType.SystemDefinedBaseType),
        (types_pb2.ExecutionTypeDecl.BaseType, pb.ExecutionType.SystemDefinedBaseType),
        (bundle_pb2.Artifact.State, pb.Artifact.State),
        (bundle_pb2.Execution.State, pb.Execution.State),
        (bundle_pb2.Event.Type, pb.Event.Type),
    ],
)
def test_enum_numbers_match_mlmd(ours: object, theirs: object) -> None:
    assert dict(ours.items()) == dict(theirs.items())  # type: ignore[attr-defined]


def test_value_fields_match_mlmd_numbers() -> None:
    ours = {f.name: f.number for f in bundle_pb2.Value.DESCRIPTOR.fields}
    theirs = {f.name: f.number for f in pb.Value.DESCRIPTOR.fields}
    assert ours == theirs


def test_bundle_round_trips_through_bytes() -> None:
    bundle = bundle_pb2.Bundle()
    bundle.header.format_version = 1
    bundle.header.source_uri = "postgresql://me:***@db/meta"
    bundle.header.lineage_version = lineage.__version__
    bundle.header.created.FromSeconds(1_700_000_000)
    bundle.types.CopyFrom(builtin_types())
    art = bundle.artifacts.add(id=1, type="Dataset", uri="/d/iris.csv", name="iris@1")
    art.properties["version"].int_value = 1
    ev = bundle.events.add(artifact_id=1, execution_id=2, type=bundle_pb2.Event.INPUT)
    ev.path.add(key="data")
    ev.path.add(index=0)
    bundle.contexts.add(id=3, type="Run", name="r1")
    bundle.attributions.add(artifact_id=1, context_id=3)
    bundle.associations.add(execution_id=2, context_id=3)
    bundle.parent_contexts.add(child_id=3, parent_id=4)
    again = bundle_pb2.Bundle.FromString(bundle.SerializeToString(deterministic=True))
    assert again == bundle
    assert again.artifacts[0].properties["version"].int_value == 1
    assert [s.WhichOneof("value") for s in again.events[0].path] == ["key", "index"]


def test_builtin_types_lists_every_builtin_artifact_class() -> None:
    types = builtin_types()
    assert [t.name for t in types.artifact_types] == ["Dataset", "Model", "Metrics", "Config"]
    base = {t.name: types_pb2.ArtifactTypeDecl.BaseType.Name(t.base_type)
            for t in types.artifact_types}
    assert base == {"Dataset": "DATASET", "Model": "MODEL", "Metrics": "METRICS",
                    "Config": "UNSET"}
    assert [t.name for t in types.context_types] == ["Experiment", "Run"]
    [step] = types.execution_types
    from lineage._schema import STEP_PROPERTIES

    assert {p.name: int(p.type) for p in step.properties} == STEP_PROPERTIES


def _put_one_of_each(store: lineage.Store, tmp_path: Path) -> None:
    f = tmp_path / "data.csv"
    f.write_text("a\n1\n")
    store.put(lineage.Dataset(f, name="d"))
    store.put(lineage.Model(content=b"weights", name="m"))
    store.put(lineage.Metrics({"acc": 0.5}, name="e"))
    store.put(lineage.Config(content="lr: 1", name="c"))


def test_declared_artifact_types_match_what_a_store_registers(tmp_path: Path) -> None:
    store = lineage.connect(":memory:")
    _put_one_of_each(store, tmp_path)
    for decl in builtin_types().artifact_types:
        stored = store.mlmd.get_artifact_type(decl.name)
        assert artifact_type_from_mlmd(stored) == decl.__class__(
            name=decl.name, base_type=decl.base_type, properties=decl.properties,
        ), decl.name


def test_declared_context_types_match_what_a_store_registers() -> None:
    store = lineage.connect(":memory:")
    store._ensure_run_types()
    for decl in builtin_types().context_types:
        stored = store.mlmd.get_context_type(decl.name)
        got = context_type_from_mlmd(stored)
        assert (got.name, list(got.properties)) == (decl.name, list(decl.properties))


def test_user_subclass_declaration_includes_its_typed_properties() -> None:
    class Embeddings(lineage.Artifact, base_type="DATASET"):
        dim: int
        encoder: str

    decl = artifact_type_decl(Embeddings)
    props = {p.name: types_pb2.PropertyType.Name(p.type) for p in decl.properties}
    assert props == {"dim": "INT", "encoder": "STRING", "fingerprint": "STRING",
                     "previous_version": "INT", "version": "INT", "locations": "PROTO",
                     "current_version": "INT"}
