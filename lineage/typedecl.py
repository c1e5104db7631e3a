"""Type declarations of ``lineage``'s records as our own ``lineage.v1`` protobuf messages.

:func:`builtin_types` describes, as a :class:`TypeSet` (``proto/lineage/v1/types.proto``),
the MLMD types ``lineage`` registers: the artifact types of the built-in classes
(``Dataset``, ``Model``, ``Metrics``, ``Config``), a template of the execution type every
step gets (``name`` empty; the step's name and ``kind`` fill it in), and the
``Experiment`` and ``Run`` context types. Bundles (export/import) carry the same messages.

Enum numbers in our messages equal MLMD's, so declarations convert by number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ml_metadata.proto import metadata_store_pb2 as pb

from lineage._proto.lineage.v1.types_pb2 import (
    ArtifactTypeDecl,
    ContextTypeDecl,
    ExecutionTypeDecl,
    PropertyDecl,
    TypeSet,
)
from lineage._schema import (
    ARTIFACT_PROPERTIES,
    EXPERIMENT_PROPERTIES,
    EXPERIMENT_TYPE,
    RUN_PROPERTIES,
    RUN_TYPE,
    STEP_PROPERTIES,
)
from lineage.artifacts import Artifact, Config, Dataset, Metrics, Model

__all__ = [
    "ArtifactTypeDecl",
    "ContextTypeDecl",
    "ExecutionTypeDecl",
    "PropertyDecl",
    "TypeSet",
    "artifact_type_decl",
    "artifact_type_from_mlmd",
    "builtin_types",
    "context_type_from_mlmd",
    "execution_type_from_mlmd",
]

#: The built-in artifact classes, in declaration order.
BUILTIN_ARTIFACTS: tuple[type[Artifact], ...] = (Dataset, Model, Metrics, Config)


def _properties(props: Mapping[str, int]) -> list[PropertyDecl]:
    return [PropertyDecl(name=k, type=pb.PropertyType.Name(props[k])) for k in sorted(props)]


def artifact_type_decl(cls: type[Artifact]) -> ArtifactTypeDecl:
    """The declaration of an artifact class: its type name, base type and properties.

    Example:
        >>> import lineage
        >>> decl = artifact_type_decl(lineage.Dataset)
        >>> decl.name, ArtifactTypeDecl.BaseType.Name(decl.base_type)
        ('Dataset', 'DATASET')
        >>> [p.name for p in decl.properties]
        ['current_version', 'fingerprint', 'locations', 'previous_version', 'version']
    """
    return ArtifactTypeDecl(
        name=cls.type_name,
        base_type=cls.base_type or "UNSET",
        properties=_properties({**ARTIFACT_PROPERTIES, **cls.property_types}),
        description=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
    )


def builtin_types() -> TypeSet:
    """The MLMD types ``lineage`` itself registers, as a :class:`TypeSet`.

    Example:
        >>> types = builtin_types()
        >>> [t.name for t in types.artifact_types]
        ['Dataset', 'Model', 'Metrics', 'Config']
        >>> [t.name for t in types.context_types]
        ['Experiment', 'Run']
    """
    return TypeSet(
        artifact_types=[artifact_type_decl(cls) for cls in BUILTIN_ARTIFACTS],
        execution_types=[
            ExecutionTypeDecl(
                name="",
                properties=_properties(STEP_PROPERTIES),
                description="template of every step's execution type: the type is named "
                "like the step and its base type comes from the step's kind",
            )
        ],
        context_types=[
            ContextTypeDecl(
                name=EXPERIMENT_TYPE,
                properties=_properties(EXPERIMENT_PROPERTIES),
                description="a group of runs; the parent context of its runs",
            ),
            ContextTypeDecl(
                name=RUN_TYPE,
                properties=_properties(RUN_PROPERTIES),
                description="one run of a pipeline: its executions and artifacts",
            ),
        ],
    )


def _from_mlmd_props(props: Mapping[str, int]) -> Iterable[PropertyDecl]:
    return _properties(dict(props))


def artifact_type_from_mlmd(t: pb.ArtifactType) -> ArtifactTypeDecl:
    """Convert a stored MLMD ``ArtifactType`` into our declaration (by enum number).

    Example:
        >>> from ml_metadata.proto import metadata_store_pb2 as pb
        >>> artifact_type_from_mlmd(pb.ArtifactType(name="X", base_type=pb.ArtifactType.MODEL)).base_type
        2
    """
    return ArtifactTypeDecl(
        name=t.name,
        base_type=pb.ArtifactType.SystemDefinedBaseType.Name(t.base_type),
        properties=_from_mlmd_props(t.properties),
        description=t.description,
    )


def execution_type_from_mlmd(t: pb.ExecutionType) -> ExecutionTypeDecl:
    """Convert a stored MLMD ``ExecutionType`` into our declaration."""
    return ExecutionTypeDecl(
        name=t.name,
        base_type=pb.ExecutionType.SystemDefinedBaseType.Name(t.base_type),
        properties=_from_mlmd_props(t.properties),
        description=t.description,
    )


def context_type_from_mlmd(t: pb.ContextType) -> ContextTypeDecl:
    """Convert a stored MLMD ``ContextType`` into our declaration."""
    return ContextTypeDecl(
        name=t.name, properties=_from_mlmd_props(t.properties), description=t.description
    )

