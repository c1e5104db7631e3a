"""What differs on MySQL/MariaDB: case-insensitive names, 255-character names, big packets.

The behaviours are checked on every backend of the ``store`` fixture: SQLite and
PostgreSQL keep names that differ only in case apart; MariaDB's default collation does not,
and the library must neither mix the two names up nor loop on the clash.
"""

from __future__ import annotations

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage.errors import ArtifactError, NotFound, StoreError

CASE_INSENSITIVE = {"mysql"}


def test_names_differing_in_case_are_never_mixed_up(store: lineage.Store) -> None:
    upper = store.put(lineage.Metrics({"acc": 0.5}, name="Model"))
    if store.kind in CASE_INSENSITIVE:
        with pytest.raises(ArtifactError, match="without regard to case") as info:
            store.put(lineage.Metrics({"acc": 0.7}, name="model"))
        assert "'Model'" in str(info.value)
        with pytest.raises(NotFound):
            store.get("model")
        with pytest.raises(NotFound):
            store.get("model@1")
        assert [a.name for a in store.artifacts(type="Metrics")] == ["Model"]
    else:
        lower = store.put(lineage.Metrics({"acc": 0.7}, name="model"))
        assert (lower.name, lower.version) == ("model", 1)
        assert store.get("model").id == lower.id
        assert store.get("model@1").id == lower.id
    got = store.get("Model")
    assert (got.id, got.name, got.version) == (upper.id, "Model", 1)
    assert store.put(lineage.Metrics({"acc": 0.9}, name="Model")).version == 2


def test_a_step_output_clashing_in_case_fails_with_the_reason(store: lineage.Store) -> None:
    store.put(lineage.Dataset("s3://bucket/a.csv", name="Iris"))

    @lineage.step(store=store)
    def ingest() -> lineage.Dataset:
        return lineage.Dataset("s3://bucket/b.csv", name="iris")

    if store.kind in CASE_INSENSITIVE:
        # the body ran: the step is FAILED with the reason, and its result is passed on
        with pytest.warns(lineage.RecordingWarning, match="without regard to case"):
            out = ingest()
        assert out.id is None
        assert [a.name for a in store.artifacts(type="Dataset")] == ["Iris"]
        [call] = store.executions(step="ingest")
        assert call.state == "FAILED" and "without regard to case" in (call.error or "")
    else:
        out = ingest()
        assert (out.name, out.version) == ("iris", 1)


def test_user_type_differing_in_case_from_a_builtin_keeps_its_own_versions(
    store: lineage.Store,
) -> None:
    class model(lineage.Artifact):  # the point is the lower-case type name
        pass

    builtin = store.put(lineage.Model("s3://bucket/m1", name="clf"))
    mine = store.put(model("s3://bucket/m2", name="clf"))
    assert (mine.type_name, mine.version) == ("model", 1)
    assert store.get("clf", type="Model").id == builtin.id
    assert store.get("clf", type="model").id == mine.id


def test_names_over_the_limit_are_refused_on_every_backend(store: lineage.Store) -> None:
    """MLMD's MySQL and PostgreSQL columns hold 255 characters, and lineage adds a version
    or an id to some names: every backend refuses names over 200 characters alike, before
    anything is written (lineage._limits)."""
    long = "n" * 300
    with pytest.raises(ArtifactError, match="the limit is 200 characters"):
        store.put(lineage.Metrics({"a": 1}, name=long))
    assert store.artifacts(type="Metrics") == []
    assert store.put(lineage.Metrics({"a": 1}, name="n" * 200)).version == 1


def test_a_step_with_a_long_parameter_name(store: lineage.Store) -> None:
    @lineage.step(name="p", store=store)
    def step(d: lineage.Dataset, **kw: int) -> lineage.Model:
        return lineage.Model("s3://bucket/m", name="m")

    with pytest.raises(lineage.StepError, match="parameter name is 300 characters"):
        step(lineage.Dataset("s3://bucket/d", name="d"), **{"k" * 300: 1})
    assert store.executions() == []
    step(lineage.Dataset("s3://bucket/d", name="d"), **{"k" * 200: 1})
    assert list(store.executions()[0].params) == ["k" * 200]


@pytest.mark.mysql
def test_a_request_over_max_allowed_packet_does_not_break_the_store(mysql_uri: str) -> None:
    store = lineage.connect(mysql_uri)
    # One value over 1,000,000 bytes is refused before anything is written ...
    with pytest.raises(ArtifactError, match="1,000,000 bytes"):
        store.put(lineage.Metrics({"a": 1}, name="huge", blob="y" * (17 << 20)))
    # ... and a raw request over MariaDB's max_allowed_packet (16 MiB by default), made
    # through the store, fails with the reason and leaves the store usable.
    raw = pb.Artifact(type_id=store._register_type("artifact", pb.ArtifactType(name="Raw")),
                      name="raw")
    raw.custom_properties["blob"].string_value = "y" * (17 << 20)
    with pytest.raises(StoreError, match="max_allowed_packet"):
        store._call("put_artifacts", [raw])
    # The server dropped the connection inside MLMD's transaction; the store reconnects.
    after = store.put(lineage.Metrics({"a": 2}, name="after"))
    assert store.get("after").id == after.id
    assert [a.name for a in store.artifacts(type="Metrics")] == ["after"]
    big = store.put(lineage.Metrics({"a": 3}, name="big", blob="z" * 1_000_000))
    assert len(store.get(big.id).properties["blob"]) == 1_000_000

