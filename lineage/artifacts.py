"""Artifacts: ``Artifact`` and the built-in ``Dataset``, ``Model``, ``Metrics``, ``Config``.

An artifact is a piece of content (a file, a folder, a URI or in-memory data) with a
logical ``name``; new content under the same name becomes the next ``version``. Users
declare their own types by subclassing, with typed properties as class annotations::

    class Embeddings(lineage.Artifact, base_type="DATASET"):
        dim: int
        encoder: str

    emb = Embeddings("out/emb.npy", name="emb", dim=384, encoder="minilm")

The MLMD type is registered once per store the first time it is used; a later version of
the class that adds a property upgrades the stored type.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _limits, _values
from lineage._schema import ARTIFACT_PROPERTIES
from lineage.errors import ArtifactError
from lineage.secrets import redact_url

__all__ = ["Artifact", "Config", "Dataset", "Metrics", "Model", "artifact_class"]

_PY_TO_MLMD: dict[object, int] = {
    int: pb.INT,
    float: pb.DOUBLE,
    str: pb.STRING,
    bool: pb.BOOLEAN,
    dict: pb.STRUCT,
    list: pb.STRUCT,
}
_NAME_TO_MLMD = {t.__name__: v for t, v in _PY_TO_MLMD.items() if isinstance(t, type)}
_BASE_TYPES = dict(pb.ArtifactType.SystemDefinedBaseType.items())

# Type name → class, so records read back from a store come back as the class that wrote
# them. Filled by class creation only; a redefinition of the same type name replaces it.
_CLASSES: dict[str, type[Artifact]] = {}

_NO_CONTENT: Any = object()


def _mlmd_type_of(annotation: object, owner: str, attr: str) -> int:
    if isinstance(annotation, str):
        parts = {p.strip() for p in annotation.split("|")} - {"None"}
        if len(parts) == 1 and (name := parts.pop()).split("[")[0] in _NAME_TO_MLMD:
            return _NAME_TO_MLMD[name.split("[")[0]]
    else:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                return _mlmd_type_of(args[0], owner, attr)
        elif (origin or annotation) in _PY_TO_MLMD:
            return _PY_TO_MLMD[origin or annotation]
    raise ArtifactError(
        f"property {owner}.{attr} is annotated {annotation!r}; an artifact property must be "
        "int, float, str, bool, dict or list (optionally `| None`)"
    )


class Artifact:
    """A recorded or to-be-recorded piece of content.

    Args:
        uri: a local path (file or folder) or a URI (``s3://…``); a non-string value is
            taken as in-memory ``content`` instead.
        name: the logical name; versions share it. Defaults to the file name.
        content: in-memory data (bytes, str, numpy array, DataFrame, dict) to fingerprint
            instead of reading ``uri``.
        fingerprint: a known digest (``"sha256:…"``), e.g. for remote content.
        keep: keep a copy of the content when it is recorded: ``None`` (the step's or
            store's rule), ``False`` (never) or ``True`` (whatever its size); see
            :mod:`lineage.keeping`.
        **properties: typed properties the class declares, and any other (custom) ones.

    Attributes:
        id: MLMD artifact id once recorded, else ``None``.
        type_name: MLMD type name (``"Dataset"``).
        version: 1, 2, … per name once recorded.
        uri: where this object's content is: the path given (recording never changes it),
            or, for a record read from the store, the first location it was seen at.
        locations: once recorded, every location (``{"uri", "host"}``) the content was
            seen at.
        kept: where a recorded version's content is kept (object store URL, key, kind,
            size), or ``None`` when it was not kept; see :mod:`lineage.keeping`.
        properties: typed and custom properties (without ``version`` and ``fingerprint``).

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> a = store.put(lineage.Artifact(content=b"hello", name="greeting"))
        >>> (a.type_name, a.name, a.version, a.fingerprint[:15])
        ('Artifact', 'greeting', 1, 'sha256:2cf24dba')
    """

    type_name: str = "Artifact"
    #: MLMD base type (``"DATASET"``, ``"MODEL"``, ``"METRICS"``, ``"STATISTICS"``) or None.
    base_type: ClassVar[str | None] = None
    #: Declared (typed) properties: name → MLMD property type.
    property_types: ClassVar[dict[str, int]] = {}
    #: Whether the record holds the whole in-memory content (a cache hit can hand the
    #: content back without a kept copy): Metrics, whose values are its properties.
    content_in_record: ClassVar[bool] = False

    def __init_subclass__(
        cls, *, type_name: str | None = None, base_type: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.type_name = type_name or cls.__name__
        if base_type is not None:
            if base_type.upper() not in _BASE_TYPES:
                raise ArtifactError(
                    f"base_type={base_type!r} for {cls.__name__}: use one of "
                    f"{sorted(k for k in _BASE_TYPES if k != 'UNSET')}"
                )
            cls.base_type = base_type.upper()
        props = dict(cls.property_types)
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # unresolved forward references: fall back to the strings
            hints = {}
        for attr, annotation in inspect.get_annotations(cls).items():
            if attr.startswith("_") or attr in ("type_name", "base_type", "property_types"):
                continue
            origin: object = typing.get_origin(annotation)
            if origin is ClassVar or str(annotation).startswith("ClassVar"):
                continue
            if attr in ARTIFACT_PROPERTIES:
                raise ArtifactError(
                    f"{cls.__name__}.{attr}: {sorted(ARTIFACT_PROPERTIES)} are kept by lineage "
                    "itself; give the property another name"
                )
            props[attr] = _mlmd_type_of(hints.get(attr, annotation), cls.__name__, attr)
        cls.property_types = props
        _CLASSES[cls.type_name] = cls

    def __init__(
        self,
        uri: str | os.PathLike[str] | Any = None,
        *,
        name: str | None = None,
        content: Any = _NO_CONTENT,
        fingerprint: str | None = None,
        keep: bool | None = None,
        **properties: Any,
    ) -> None:
        if uri is not None and not isinstance(uri, (str, os.PathLike)):
            if content is not _NO_CONTENT:
                raise ArtifactError("give either a uri/path or content=, not content twice")
            uri, content = None, uri
        self.content = None if content is _NO_CONTENT else content
        self.has_content = content is not _NO_CONTENT
        self.uri: str = _normalise_uri(uri) if uri is not None else ""
        #: Whether ``name=`` was given (a path without one may be an existing record).
        self.name_given: bool = name is not None
        if name is None:
            if not self.uri:
                raise ArtifactError(
                    f"a {self.type_name} built from in-memory content needs name=; "
                    "e.g. Dataset(df, name='train')"
                )
            name = Path(self.uri.rstrip("/")).name or self.uri
        if not isinstance(name, str) or not name:
            raise ArtifactError(f"name must be a non-empty string, got {name!r}")
        self.name: str = _limits.check_name(name, f"{self.type_name} name", ArtifactError)
        self.fingerprint: str | None = fingerprint
        if keep is not None and not isinstance(keep, bool):
            raise ArtifactError(f"keep={keep!r} must be True, False or None")
        self.keep: bool | None = keep
        #: Where the recorded content is kept (the ``kept`` property, see
        #: :mod:`lineage.keeping`), or ``None``.
        self.kept: dict[str, Any] | None = None
        for key in ARTIFACT_PROPERTIES:
            if key in properties:
                raise ArtifactError(f"{key!r} is set by lineage; it cannot be given as a property")
        for key in properties:
            _limits.check_name(key, "property name", ArtifactError)
        # numpy/pandas scalars made plain, bad text refused: before anything is written
        self.properties: dict[str, Any] = {
            key: _values.plain(value, f"property {key!r}", ArtifactError)
            for key, value in properties.items()}
        self.id: int | None = None
        self.version: int | None = None
        self.previous_version: int | None = None
        self.state: str | None = None
        self.external_id: str | None = None
        self.create_time: int | None = None  # ms since epoch, as MLMD keeps it
        #: Every location the content was seen at, once recorded: ``{"uri", "host"}``.
        self.locations: list[dict[str, str]] = []

    def __getattr__(self, attr: str) -> Any:
        props = self.__dict__.get("properties")
        if props is not None and attr in type(self).property_types and attr in props:
            return props[attr]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    @property
    def ref(self) -> str:
        """The reference string of this recorded artifact, ``"artifact:<id>"``."""
        if self.id is None:
            raise ArtifactError(f"{self!r} is not recorded yet; store.put() it first")
        return f"artifact:{self.id}"

    @property
    def path(self) -> Path | None:
        """The local path of the content, or ``None`` for remote or in-memory content."""
        return _local_path(self.uri)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used in query results (``id``, ``type``, ``name``, …)."""
        return {
            "id": self.id,
            "type": self.type_name,
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "fingerprint": self.fingerprint,
        }

    def __repr__(self) -> str:
        at = f"@{self.version}" if self.version is not None else ""
        ident = f" id={self.id}" if self.id is not None else ""
        return f"<{self.type_name} {self.name}{at}{ident} uri={self.uri!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Artifact):
            return NotImplemented
        if self.id is not None or other.id is not None:
            return self.id == other.id
        return self is other

    def __hash__(self) -> int:
        return hash(("artifact", self.id)) if self.id is not None else id(self)


def _normalise_uri(uri: str | os.PathLike[str]) -> str:
    text = os.fspath(uri)
    if isinstance(text, bytes):
        raise ArtifactError(f"give a path as str, not bytes: {text[:60]!r}")
    _limits.check_uri(text, ArtifactError)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        return redact_url(text)  # credentials are never recorded (lineage.secrets)
    return os.path.abspath(os.path.expanduser(text))


def _local_path(uri: str) -> Path | None:
    if not uri or "://" in uri:
        return None
    return Path(uri)


def artifact_class(type_name: str) -> type[Artifact]:
    """Return the Python class recorded under an MLMD type name (``Artifact`` if unknown).

    Example:
        >>> artifact_class("Dataset").__name__
        'Dataset'
        >>> artifact_class("tfx.Unknown").__name__
        'Artifact'
    """
    return _CLASSES.get(type_name, Artifact)


class Dataset(Artifact, base_type="DATASET"):
    """Data: a file, a folder, a URI or an in-memory table (MLMD base type DATASET).

    Example:
        >>> Dataset("data/iris.csv", name="iris", split="train").properties
        {'split': 'train'}
    """


class Model(Artifact, base_type="MODEL"):
    """A trained model (MLMD base type MODEL).

    Example:
        >>> Model("out/model.pkl", name="clf").name
        'clf'
    """


class Metrics(Artifact, base_type="METRICS"):
    """Evaluation results; the values become properties (MLMD base type METRICS).

    Args:
        values: metric name → number (or string).
        name: the logical name.
        uri: where a metrics file lives, if any; else the values are the content.

    Example:
        >>> m = Metrics({"acc": 0.93, "f1": 0.91}, name="eval")
        >>> m.values
        {'acc': 0.93, 'f1': 0.91}
    """

    content_in_record: ClassVar[bool] = True

    def __init__(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        uri: str | os.PathLike[str] | None = None,
        **properties: Any,
    ) -> None:
        values = {key: _values.plain(value, f"metric {key!r}", ArtifactError)
                  for key, value in dict(values or {}).items()}  # np.float32(0.9) -> 0.9
        if uri is None:
            super().__init__(content=values, name="metrics" if name is None else name,
                             **values, **properties)
        else:
            super().__init__(uri, name=name, **values, **properties)
        self._metric_keys = list(values)

    @property
    def values(self) -> dict[str, Any]:
        """The metric values (numbers) among the properties."""
        keys = self.__dict__.get("_metric_keys")
        if keys is None:
            return {
                k: v for k, v in self.properties.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
        return {k: self.properties[k] for k in keys if k in self.properties}

    def recorded_content(self) -> tuple[Any, bool] | None:
        """The values the fingerprint was computed from, re-derived from the record: the
        numbers among the properties (not exact: non-numeric values, or other properties
        given beside the values, would be left out or added)."""
        return self.values, False


class Config(Artifact):
    """A configuration file (YAML, JSON, TOML, …); the name defaults to the file name.

    Example:
        >>> Config("params.yaml").name
        'params.yaml'
    """
