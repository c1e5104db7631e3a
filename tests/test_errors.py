"""The exception tree and the one boundary where MLMD errors are translated."""

from __future__ import annotations

import inspect

import pytest
from ml_metadata import errors as mlmd_errors

import lineage
from lineage import errors
from lineage.errors import MLMD_ERROR_MAP, redact, translate

SECRET = "hunter2-Zq9"


def _mlmd_error_classes() -> list[type[Exception]]:
    return [
        obj for _, obj in inspect.getmembers(mlmd_errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == mlmd_errors.__name__
    ]


def test_every_mlmd_error_class_has_a_mapping() -> None:
    classes = _mlmd_error_classes()
    assert len(classes) >= 17  # StatusError and its 16 status codes in 1.17
    missing = [c.__name__ for c in classes if c not in MLMD_ERROR_MAP]
    assert not missing, f"add these to lineage.errors.MLMD_ERROR_MAP: {missing}"


@pytest.mark.parametrize("cls", _mlmd_error_classes(), ids=lambda c: c.__name__)
def test_translate_gives_the_mapped_class_with_a_redacted_message(cls: type[Exception]) -> None:
    code = getattr(mlmd_errors, "UNKNOWN", 2)
    try:
        exc = cls(f"boom at postgresql://u:{SECRET}@h/db and {SECRET}", code)
    except TypeError:
        exc = cls(f"boom at postgresql://u:{SECRET}@h/db and {SECRET}")
    ours = translate(exc, uri="postgresql://u:***@h/db", action="get artifacts",
                     secrets=[SECRET])
    assert type(ours) is MLMD_ERROR_MAP[cls]
    assert isinstance(ours, lineage.StoreError) and isinstance(ours, lineage.LineageError)
    assert SECRET not in str(ours)
    assert "could not get artifacts" in str(ours) and "postgresql://u:***@h/db" in str(ours)
    assert ours.uri == "postgresql://u:***@h/db"


def test_specific_mappings() -> None:
    assert MLMD_ERROR_MAP[mlmd_errors.AbortedError] is lineage.ConcurrentWriteError
    assert MLMD_ERROR_MAP[mlmd_errors.UnavailableError] is lineage.ConnectionFailed


def test_plain_runtime_error_while_opening_is_a_connection_failure() -> None:
    exc = RuntimeError(f"PostgreSQL error: password authentication failed ({SECRET})")
    ours = translate(exc, uri="postgresql://u:***@h/d", action="open the store",
                     secrets=[SECRET])
    assert isinstance(ours, lineage.ConnectionFailed)
    assert SECRET not in str(ours) and "Check that the server is running" in str(ours)


def test_redact_hides_passwords_in_uris_and_given_secrets() -> None:
    assert redact("mysql://root:pw@h:3306/x") == "mysql://root:***@h:3306/x"
    assert redact("a mysql://root@h/x b") == "a mysql://root@h/x b"
    assert redact(f"token {SECRET}!", [SECRET]) == "token ***!"
    assert redact("nothing", [""]) == "nothing"


def test_store_call_raises_ours_from_the_mlmd_error() -> None:
    store = lineage.connect(":memory:")
    with pytest.raises(lineage.StoreError) as info:
        store._call("get_artifact_type", "NoSuchType")
    assert isinstance(info.value.__cause__, mlmd_errors.NotFoundError)
    assert store._call("get_artifact_type", "NoSuchType", missing=None) is None


def test_store_call_maps_invalid_arguments() -> None:
    store = lineage.connect(":memory:")
    from ml_metadata.proto import metadata_store_pb2 as pb

    with pytest.raises(lineage.StoreError) as info:
        store._call("put_artifacts", [pb.Artifact(type_id=424242)])
    assert isinstance(info.value.__cause__, mlmd_errors.StatusError)
    assert store.artifacts() == []


def test_the_tree_in_the_module_docstring_lists_every_error() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, name
        cls = getattr(errors, name)
        assert issubclass(cls, (errors.LineageError, errors.LineageWarning))
        assert cls.__doc__, f"{name} needs a docstring saying when it is raised"


def test_errors_carry_their_context_as_keyword_attributes() -> None:
    assert lineage.NotFound("x", ref="a@1").ref == "a@1"
    assert lineage.ReadOnlyStore("x", uri="u").uri == "u"
    assert lineage.StepError("x", step="train").step == "train"
    assert lineage.FingerprintError("x", path="/p").path == "/p"
    assert issubclass(lineage.FingerprintError, lineage.ArtifactError)
    assert issubclass(lineage.TypeConflict, lineage.StoreError)
    assert issubclass(lineage.InvalidRef, lineage.RefError)
