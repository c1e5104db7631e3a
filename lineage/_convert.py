"""The one place that converts our records to and from ``metadata_store_pb2`` messages."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2, wrappers_pb2
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _limits, _values
from lineage._proto.lineage.v1 import values_pb2
from lineage._schema import ARTIFACT_PROPERTIES, INPUT_EVENTS, OUTPUT_EVENTS, RECORDED_BY
from lineage.artifacts import Artifact, artifact_class
from lineage.errors import ArtifactError, LineageError
from lineage.records import Execution, Run

_STATE_NAMES = {v: k for k, v in pb.Execution.State.items()}
_ARTIFACT_STATE_NAMES = {v: k for k, v in pb.Artifact.State.items()}
_ARTIFACT_BASE = {v: k for k, v in pb.ArtifactType.SystemDefinedBaseType.items()}
_EXECUTION_BASE = {v: k for k, v in pb.ExecutionType.SystemDefinedBaseType.items()}
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)
# MLMD indexes string and struct property values; a PostgreSQL btree row holds at most
# ~2.7 kB, so longer strings and structs go in the (unindexed) proto_value.
_INDEXED_MAX = 2000

# --- values ---------------------------------------------------------------------------

#: The first bytes of a ``google.protobuf.BytesValue`` in ``proto_value`` that holds a
#: serialized ``lineage.v1.ExactValue`` (proto/lineage/v1/values.proto): a dict or list a
#: plain ``google.protobuf.Struct`` would not keep exactly (2.0, -0.0, ints beyond 2**53).
#: A BytesValue, not the message itself in the ``Any``: MLMD's C++ side knows BytesValue,
#: and logs "Proto type not found" for types it does not know whenever a record is
#: rewritten.
EXACT_MARKER = b"lineage.v1.ExactValue:"
_SAFE_INT = 2**53


def _to_pb_value(x: Any) -> struct_pb2.Value:
    """``x`` as a plain ``google.protobuf.Value`` (numbers become doubles: lossy for
    integral floats and ints beyond 2**53; see :func:`_plain_pb_value`)."""
    out = struct_pb2.Value()
    if x is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(x, bool):
        out.bool_value = x
    elif isinstance(x, (int, float)):
        out.number_value = float(x)
    elif isinstance(x, str):
        out.string_value = x
    elif isinstance(x, Mapping):
        out.struct_value.SetInParent()  # an empty dict stays a dict
        for k, v in x.items():
            out.struct_value.fields[str(k)].CopyFrom(_to_pb_value(v))
    elif isinstance(x, (list, tuple)):
        out.list_value.SetInParent()  # an empty list stays a list
        for v in x:
            out.list_value.values.add().CopyFrom(_to_pb_value(v))
    else:
        raise TypeError(f"cannot store a {type(x).__name__} in a struct")
    return out


def _struct_exact(x: Any) -> bool:
    """Whether :func:`_from_pb_value` gives ``x`` back from :func:`_to_pb_value`'s message:
    no integral float (2.0, -0.0) and no int beyond 2**53 anywhere in it."""
    kind = type(x)
    if kind is int:
        return bool(-_SAFE_INT < x < _SAFE_INT)
    if kind is float:
        return _values.is_float_exact_in_struct(x)
    if kind is str or kind is bool or x is None:
        return True
    if isinstance(x, Mapping):
        return all(_struct_exact(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(_struct_exact(v) for v in x)
    if isinstance(x, bool):
        return True
    if isinstance(x, int):
        return bool(-_SAFE_INT < x < _SAFE_INT)
    if isinstance(x, float):
        return _values.is_float_exact_in_struct(float(x))
    return True  # other types: _to_pb_value refuses them


def _plain_pb_value(x: Any) -> struct_pb2.Value | None:
    """``x`` as a plain ``google.protobuf.Value`` if that reads back exactly, else None."""
    return _to_pb_value(x) if _struct_exact(x) else None


def _from_pb_value(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() and abs(n) < _SAFE_INT else n
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return {k: _from_pb_value(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [_from_pb_value(x) for x in v.list_value.values]
    return None


def _to_exact(x: Any) -> values_pb2.ExactValue:
    out = values_pb2.ExactValue()
    if x is None:
        out.null_value = True
    elif isinstance(x, bool):
        out.bool_value = x
    elif isinstance(x, int):
        if _INT64[0] <= x <= _INT64[1]:
            out.int_value = x
        else:
            out.big_int_value = int(x).to_bytes((x.bit_length() + 8) // 8, "big", signed=True)
    elif isinstance(x, float):
        out.float_value = x
    elif isinstance(x, str):
        out.string_value = x
    elif isinstance(x, Mapping):
        out.struct_value.SetInParent()
        for k, v in x.items():
            out.struct_value.keys.append(str(k))
            out.struct_value.values.append(_to_exact(v))
    elif isinstance(x, (list, tuple)):
        out.list_value.SetInParent()
        for v in x:
            out.list_value.values.append(_to_exact(v))
    else:
        raise TypeError(f"cannot store a {type(x).__name__} in a struct")
    return out


def _from_exact(v: values_pb2.ExactValue) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "int_value":
        return v.int_value
    if kind == "float_value":
        return v.float_value
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "big_int_value":
        return int.from_bytes(v.big_int_value, "big", signed=True)
    if kind == "struct_value":
        return {k: _from_exact(x) for k, x in zip(v.struct_value.keys, v.struct_value.values,
                                                  strict=False)}
    if kind == "list_value":
        return [_from_exact(x) for x in v.list_value.values]
    return None


def _pack(value: pb.Value, x: Any) -> None:
    """Pack ``x`` in ``value.proto_value``: a plain ``google.protobuf.Value`` (readable by
    any tool) when it reads back exactly, else an ``ExactValue`` (see
    :data:`EXACT_MARKER`)."""
    plain = _plain_pb_value(x)
    if plain is not None:
        value.proto_value.Pack(plain)
    else:
        value.proto_value.Pack(wrappers_pb2.BytesValue(
            value=EXACT_MARKER + _to_exact(x).SerializeToString()))


def _unpack_exact(any_value: Any) -> tuple[bool, Any]:
    raw = wrappers_pb2.BytesValue()
    if not any_value.Unpack(raw) or not raw.value.startswith(EXACT_MARKER):
        return False, None
    exact = values_pb2.ExactValue()
    exact.ParseFromString(raw.value[len(EXACT_MARKER):])
    return True, _from_exact(exact)


def _sql_exact(x: float) -> bool:
    """Whether MLMD's SQL round trip of a double (``%f`` out, ``%.15g`` back) keeps ``x``
    (and its sign: -0.0 is kept packed)."""
    return (float(f"{x:f}") == x and float(f"{x:.15g}") == x
            and (x != 0 or math.copysign(1.0, x) > 0))


def to_value(x: Any, *, typed: bool = False, packed: bool = False,
             where: str = "the value", error: type[LineageError] = ArtifactError) -> pb.Value:
    """Encode a Python value as an MLMD ``Value``, exactly, or raise ``error`` (naming
    ``where``) before anything is written.

    bool, int (64-bit), float (NaN and inf included) and str are native; dicts are structs;
    lists, tuples and ``None`` are ``google.protobuf.Value`` messages in ``proto_value``.
    numpy and pandas scalars are made plain first, and text, nesting and size are checked
    (:func:`lineage._values.plain`). Raises ``TypeError`` for other types.

    MLMD writes a ``double_value`` into SQL with six decimals (``1e-7`` is stored as 0,
    ``3.14159265`` as 3.141593) and SQLite reads it back with 15 significant digits, so a
    float that would not survive that is packed exactly in ``proto_value``, unless
    ``typed`` (a declared DOUBLE property must be a double).

    A ``google.protobuf.Struct`` keeps numbers as doubles: a dict or list holding an
    integral float (2.0, -0.0) or an int beyond 2**53 is packed as a
    ``lineage.v1.ExactValue`` instead (:data:`EXACT_MARKER`), as are ints beyond 64 bits.

    MLMD indexes string and struct values, and PostgreSQL refuses index rows over ~2.7 kB:
    strings and dicts longer than 2,000 bytes (unless ``typed``) and anything when
    ``packed`` (for properties declared PROTO) go in a packed value.

    Example:
        >>> from_value(to_value(1e-7)), from_value(to_value(0.5)), from_value(to_value(2**40))
        (1e-07, 0.5, 1099511627776)
        >>> from_value(to_value({"lr": 2.0, "seed": 2**70}))
        {'lr': 2.0, 'seed': 1180591620717411303424}
    """
    value = pb.Value()
    set_value(value, x, typed=typed, packed=packed, where=where, error=error)
    return value


def set_value(value: pb.Value, x: Any, *, typed: bool = False, packed: bool = False,
              where: str = "the value", error: type[LineageError] = ArtifactError) -> None:
    """Encode ``x`` into ``value`` in place, replacing what it held, as :func:`to_value`
    encodes it (one message less to build and copy). On ``TypeError`` or ``error``
    ``value`` is left as it was.

    Example:
        >>> from ml_metadata.proto import metadata_store_pb2 as pb
        >>> v = pb.Value(string_value="old"); set_value(v, 3); v.WhichOneof("value"), v.int_value
        ('int_value', 3)
    """
    kind = type(x)  # exact types first: the common cases, decided as the chain below would
    if kind is str:
        if len(x) > _INDEXED_MAX // 4 or "\0" in x or not x.isascii():
            x = _values.plain(x, where, error)
    elif kind is not int and kind is not float and kind is not bool and x is not None:
        x = _values.plain(x, where, error)
        kind = type(x)
    if packed:
        _pack(value, x)
    elif kind is str and (typed or len(x) <= _INDEXED_MAX // 4):
        value.string_value = x
    elif kind is int and _INT32[0] <= x <= _INT32[1]:
        value.int_value = x
    elif kind is float and math.isfinite(x) and (typed or _sql_exact(x)):
        value.double_value = x
    elif isinstance(x, bool):
        value.bool_value = x
    elif isinstance(x, int) and _INT32[0] <= x <= _INT32[1]:
        value.int_value = x
    elif isinstance(x, int) and _INT64[0] <= x <= _INT64[1]:
        # MLMD's PostgreSQL schema keeps int_value in a 32-bit INTEGER column: wider ints
        # go in a packed google.protobuf.Int64Value (from_value unpacks it).
        value.proto_value.Pack(wrappers_pb2.Int64Value(value=x))
    elif isinstance(x, int):
        if typed:
            raise error(f"{where} is an int of {x.bit_length()} bits; a declared int property "
                        f"holds at most 64 bits ({_INT64[0]} to {_INT64[1]})")
        _pack(value, x)  # beyond 64 bits: an ExactValue
    elif isinstance(x, float) and not math.isfinite(x):
        # MLMD writes doubles as SQL literals, and `nan`/`inf` break the query: keep
        # non-finite numbers in a packed google.protobuf.Value (from_value unpacks it).
        value.proto_value.Pack(_to_pb_value(x))
    elif isinstance(x, float) and not typed and not _sql_exact(x):
        _pack(value, x)
    elif isinstance(x, float):
        value.double_value = x
    elif isinstance(x, str):
        if not typed and len(x) > _INDEXED_MAX // 4 and len(x.encode()) > _INDEXED_MAX:
            value.proto_value.Pack(_to_pb_value(x))
        else:
            value.string_value = x
    elif isinstance(x, Mapping):
        struct = _plain_pb_value(x)
        if struct is None and not typed:
            _pack(value, x)
        elif struct is None:  # a declared STRUCT of ours: lineage writes exact ones only
            value.struct_value.CopyFrom(_to_pb_value(x).struct_value)
        elif not typed and struct.ByteSize() > _INDEXED_MAX:
            value.proto_value.Pack(struct)
        else:
            value.struct_value.CopyFrom(struct.struct_value)
    elif x is None or isinstance(x, (list, tuple)):
        _pack(value, x)
    else:
        raise TypeError(f"cannot store a {type(x).__name__} as an MLMD property")


def from_value(value: pb.Value) -> Any:
    """Decode an MLMD ``Value`` written by :func:`to_value` or by any other tool."""
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {k: _from_pb_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "proto_value":
        inner = struct_pb2.Value()
        if value.proto_value.Unpack(inner):
            return _from_pb_value(inner)
        wide = wrappers_pb2.Int64Value()
        if value.proto_value.Unpack(wide):
            return wide.value
        ok, exact = _unpack_exact(value.proto_value)
        if ok:
            return exact
        from lineage._series import chunk_of_bytes  # metric points: shown as series

        chunk = chunk_of_bytes(value.proto_value)
        if chunk is not None and (chunk.series or chunk.matrices):
            return {s.name: [[st, _from_pb_value(struct_pb2.Value(number_value=v))]
                             for st, v in zip(s.steps, s.values, strict=False)]
                    for s in chunk.series}
        return json_format.MessageToDict(value.proto_value)
    return None


#: Final metric values too big for the indexed, typed ``metrics`` STRUCT (PostgreSQL btree
#: rows stop at ~2.7 kB), or that a plain Struct would not keep exactly (1.0, -0.0, ints
#: beyond 2**53), go packed in this PROTO property; readers see them as ``metrics``.
METRICS_PACKED = "metrics_packed"


def set_final_metrics(props: Any, metrics: Mapping[str, Any]) -> None:
    """Write final metric values into an execution's or run's typed properties: the
    ``metrics`` STRUCT while it fits an index row and keeps every value exactly; else
    packed in ``metrics_packed`` (which readers prefer), with the ``metrics`` STRUCT kept
    beside it as other MLMD tools and queries see it (1.0 as 1) when it fits."""
    values = dict(metrics)
    struct = _to_pb_value(values)
    fits = struct.ByteSize() <= _INDEXED_MAX
    if fits and _struct_exact(values):
        props["metrics"].struct_value.CopyFrom(struct.struct_value)
        if METRICS_PACKED in props:
            del props[METRICS_PACKED]
        return
    _pack(props[METRICS_PACKED], values)
    if fits:
        props["metrics"].struct_value.CopyFrom(struct.struct_value)
    elif "metrics" in props:
        del props["metrics"]


def jsonable(value: Any) -> Any:
    """``value`` ready for ``json.dumps``: non-finite floats as strings (``'nan'``), keys as
    strings, tuples as lists: what every ``to_dict()`` and export gives.

    Example:
        >>> jsonable({1: (float("inf"), 2.0)})
        {'1': ['inf', 2.0]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def props_to_dict(props: Mapping[str, pb.Value]) -> dict[str, Any]:
    """Decode a properties map, keys sorted (final metrics packed for their size are
    ``metrics``, as when they fit)."""
    out = {k: from_value(props[k]) for k in sorted(props)}
    if METRICS_PACKED in out:
        out["metrics"] = out.pop(METRICS_PACKED)
    return out


def set_props(target: Any, props: Mapping[str, Any], *, typed: bool = False,
              what: str = "property", error: type[LineageError] = ArtifactError) -> None:
    """Write Python values into a protobuf properties map (``typed``: declared properties
    of lineage's own, which it writes as their type wants). Every value is converted and
    checked before ``target`` is touched: on an error, ``target`` is as it was."""
    encoded: dict[str, pb.Value] = {}
    for key, val in props.items():
        where = f"{what} {key!r}"
        _limits.check_name(key, f"{what} name", error)
        try:
            encoded[key] = to_value(val, typed=typed, where=where, error=error)
        except TypeError as exc:
            raise error(f"{where}: {exc}") from None
    for key, value in encoded.items():
        target[key].CopyFrom(value)


_DECLARED_NAMES = {pb.INT: "int", pb.DOUBLE: "float", pb.STRING: "str", pb.BOOLEAN: "bool",
                   pb.STRUCT: "dict or list", pb.PROTO: "any value"}


def set_declared(props: Any, custom: Any, declared: Mapping[str, int],
                 values: Mapping[str, Any]) -> None:
    """Write user properties of an artifact whose class declares their type (``declared``:
    name → MLMD property type) into ``props``, exactly: a value the declared type cannot
    hold exactly is also written, exactly, as the custom property of the same name, which
    readers prefer (:func:`recorded_fields`); the declared property keeps the closest value
    its type holds (a float rounded to MLMD's six decimals, a dict with 2.0 as 2), or is
    left out (None, a list, an int beyond 32 bits, a text over 2,000 bytes).

    Raises:
        ArtifactError: a value of another type than declared (an int for a float is
            taken as that float), or one :func:`to_value` refuses; nothing is written.
    """
    typed: dict[str, pb.Value] = {}
    exact: dict[str, Any] = {}
    for key, raw in values.items():
        where = f"property {key!r}"
        x = _values.plain(raw, where, ArtifactError)
        ptype = declared[key]
        if x is None or ptype == pb.PROTO:
            exact[key] = x
            if ptype == pb.PROTO and x is not None:
                typed[key] = to_value(x, packed=True, where=where)
                del exact[key]
            continue
        wrong = ArtifactError(f"{where} is declared {_DECLARED_NAMES.get(ptype, ptype)} by "
                              f"its artifact class; got a {type(x).__name__}: {x!r:.80}")
        if ptype == pb.BOOLEAN:
            if not isinstance(x, bool):
                raise wrong
            typed[key] = pb.Value(bool_value=x)
        elif ptype == pb.INT:
            if not isinstance(x, int) or isinstance(x, bool):
                raise wrong
            if _INT32[0] <= x <= _INT32[1]:
                typed[key] = pb.Value(int_value=x)
            else:
                exact[key] = x
        elif ptype == pb.DOUBLE:
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                raise wrong
            f = float(x)
            if math.isfinite(f):
                typed[key] = pb.Value(double_value=f)
            if not (math.isfinite(f) and _sql_exact(f)):
                exact[key] = f
        elif ptype == pb.STRING:
            if not isinstance(x, str):
                raise wrong
            if len(x) <= _INDEXED_MAX // 4 or len(x.encode()) <= _INDEXED_MAX:
                typed[key] = pb.Value(string_value=x)
            else:
                exact[key] = x
        elif ptype == pb.STRUCT:
            if not isinstance(x, (dict, list)):
                raise wrong
            if isinstance(x, dict):
                struct = _to_pb_value(x)
                if struct.ByteSize() <= _INDEXED_MAX:
                    typed[key] = pb.Value(struct_value=struct.struct_value)
                    if _struct_exact(x):
                        continue
            exact[key] = x
        else:
            raise wrong
    packed = {key: to_value(x, where=f"property {key!r}") for key, x in exact.items()}
    for key, value in typed.items():
        props[key].CopyFrom(value)
    for key, value in packed.items():
        custom[key].CopyFrom(value)


# --- artifacts --------------------------------------------------------------------------


def artifact_type_proto(cls: type[Artifact]) -> pb.ArtifactType:
    """The MLMD type declaration of an artifact class."""
    t = pb.ArtifactType(name=cls.type_name)
    if cls.base_type:
        t.base_type = pb.ArtifactType.SystemDefinedBaseType.Value(cls.base_type)
    for key, ptype in {**ARTIFACT_PROPERTIES, **cls.property_types}.items():
        t.properties[key] = ptype
    return t


def mlmd_artifact_name(name: str, version: int) -> str:
    """The MLMD ``name`` of version ``version`` of logical name ``name``."""
    return f"{name}@{version}"


def artifact_to_proto(
    artifact: Artifact,
    *,
    type_id: int,
    version: int,
    previous: int | None,
    external_id: str,
    declared: Mapping[str, int],
) -> pb.Artifact:
    """A new MLMD artifact (no id) for ``artifact`` at ``version``."""
    proto = pb.Artifact(
        type_id=type_id,
        name=mlmd_artifact_name(artifact.name, version),
        uri=artifact.uri,
        external_id=external_id,
        state=pb.Artifact.LIVE,
    )
    props = proto.properties
    set_value(props["version"], version, typed=True)
    if artifact.fingerprint:
        set_value(props["fingerprint"], artifact.fingerprint, typed=True)
    if previous is not None:
        set_value(props["previous_version"], previous, typed=True)
    if artifact.properties:
        typed: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for key, val in artifact.properties.items():
            (typed if key in declared else custom)[key] = val
        set_props(proto.custom_properties, custom)
        set_declared(props, proto.custom_properties, declared, typed)
    return proto


def artifact_locations(proto: pb.Artifact) -> list[dict[str, str]]:
    """Every location the content of ``proto`` was seen at: ``{"uri", "host"}``, MLMD's
    ``uri`` first (host ``""`` when not recorded: records made before locations were kept,
    and remote URIs, which are the same from every host)."""
    out: list[dict[str, str]] = []
    if "locations" in proto.properties:
        stored = from_value(proto.properties["locations"])
        if isinstance(stored, list):
            out = [{"uri": str(item[0]), "host": str(item[1])} for item in stored
                   if isinstance(item, list) and len(item) == 2]
    if proto.uri and not any(loc["uri"] == proto.uri for loc in out):
        out.insert(0, {"uri": proto.uri, "host": ""})
    return out


def recorded_fields(proto: pb.Artifact) -> dict[str, Any]:
    """The recorded fields of an artifact proto, as :class:`Artifact` attributes: ``uri``,
    ``fingerprint``, ``kept``, ``properties`` (the other typed and custom ones), ``id``,
    ``version``, ``previous_version``, ``state``, ``external_id``, ``create_time``,
    ``locations``."""
    props = props_to_dict(proto.properties)
    if proto.custom_properties:
        props.update(props_to_dict(proto.custom_properties))
    version = props.pop("version", None)
    fingerprint = props.pop("fingerprint", None)
    previous = props.pop("previous_version", None)
    kept = props.pop("kept") if isinstance(props.get("kept"), dict) else None  # lineage.keeping
    props.pop("locations", None)
    props.pop("current_version", None)
    return {
        "locations": artifact_locations(proto),
        "uri": proto.uri,
        "fingerprint": fingerprint if isinstance(fingerprint, str) and fingerprint else None,
        "kept": kept,
        "properties": props,
        "id": proto.id,
        "version": version if isinstance(version, int) else None,
        "previous_version": previous if isinstance(previous, int) else None,
        "state": _ARTIFACT_STATE_NAMES.get(proto.state, "UNKNOWN"),
        "external_id": proto.external_id or None,
        "create_time": proto.create_time_since_epoch or None,
    }


def artifact_from_proto(proto: pb.Artifact, atype: pb.ArtifactType | None) -> Artifact:
    """Build the recorded :class:`Artifact` (of the class registered for its type)."""
    type_name = atype.name if atype is not None else proto.type or f"type#{proto.type_id}"
    cls = artifact_class(type_name)
    art = cls.__new__(cls)
    fields = recorded_fields(proto)
    version = fields["version"]
    name = proto.name
    if version is not None and name.endswith(f"@{version}"):
        name = name[: -len(f"@{version}")]
    art.__dict__.update(content=None, has_content=False, name=name or None, name_given=True,
                        **fields)
    if cls is Artifact or type_name != cls.type_name:
        art.__dict__["type_name"] = type_name
    art.__dict__["base_type"] = (
        _ARTIFACT_BASE.get(atype.base_type) if atype is not None and atype.HasField("base_type")
        else cls.base_type
    )
    if art.base_type == "UNSET":
        art.__dict__["base_type"] = None
    return art


# --- executions and contexts ------------------------------------------------------------


def state_name(state: int) -> str:
    """``pb.Execution.State`` value → name."""
    return str(_STATE_NAMES.get(state, "UNKNOWN"))


def is_ours(etype: pb.ExecutionType | None) -> bool:
    """Whether an execution type was declared by ``lineage``."""
    return etype is not None and RECORDED_BY in etype.properties


def execution_from_proto(
    proto: pb.Execution, etype: pb.ExecutionType | None, events: Iterable[pb.Event] = ()
) -> Execution:
    """Build an :class:`Execution` record; ``events`` are this execution's events."""
    type_name = etype.name if etype is not None else proto.type or f"type#{proto.type_id}"
    ours = is_ours(etype)
    typed = props_to_dict(proto.properties)
    custom = props_to_dict(proto.custom_properties)
    if ours:
        params, properties = custom, typed
        name = type_name
    else:
        params = {k: _maybe_json(v) for k, v in {**typed, **custom}.items()}
        properties = {}
        name = type_name.rsplit(".", 1)[-1]
    error = properties.get("error") or None
    inputs: list[int] = []
    outputs: list[int] = []
    for ev in sorted(events, key=_event_order):
        if ev.type in INPUT_EVENTS and ev.artifact_id not in inputs:
            inputs.append(ev.artifact_id)
        elif ev.type in OUTPUT_EVENTS and ev.artifact_id not in outputs:
            outputs.append(ev.artifact_id)
    base = None
    if etype is not None and etype.HasField("base_type"):
        base = _EXECUTION_BASE.get(etype.base_type)
        if base == "UNSET":
            base = None
    return Execution(
        id=proto.id,
        type_name=type_name,
        name=name,
        state=state_name(proto.last_known_state),
        params=params,
        error=error if isinstance(error, str) else None,
        inputs=inputs,
        outputs=outputs,
        properties=properties,
        base_type=base,
        create_time=proto.create_time_since_epoch or None,
        update_time=proto.last_update_time_since_epoch or None,
        mlmd_name=proto.name or None,
        ours=ours,
    )


def _maybe_json(value: Any) -> Any:
    """TFX keeps component settings as JSON strings; decode objects, arrays and strings."""
    if isinstance(value, str) and value[:1] in ('{', '[', '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _event_order(ev: pb.Event) -> tuple[int, str]:
    return (ev.milliseconds_since_epoch, event_path(ev))


def event_path(ev: pb.Event) -> str:
    """An event's path as text: ``"data"``, ``"inputs[0]"``, ``"examples.train[0]"``."""
    parts: list[str] = []
    for step in ev.path.steps:
        if step.HasField("key"):
            parts.append(("." if parts else "") + str(step.key))
        elif step.HasField("index"):
            parts.append(f"[{step.index}]")
    return "".join(parts)


def make_event_path(event: pb.Event, path: Sequence[str | int]) -> None:
    """Fill ``event.path`` from keys (str) and indices (int)."""
    for part in path:
        step = event.path.steps.add()
        if isinstance(part, int):
            step.index = part
        else:
            step.key = part


def context_from_proto(proto: pb.Context, ctype: pb.ContextType | None, parent: str | None = None) -> Run:
    """Build a :class:`Run` record from a context."""
    typed = props_to_dict(proto.properties)
    run_name = typed.get("run_name")
    return Run(
        id=proto.id,
        type_name=ctype.name if ctype is not None else proto.type or f"type#{proto.type_id}",
        name=proto.name,
        run_name=run_name if isinstance(run_name, str) else proto.name,
        experiment=parent if parent is not None else (typed.get("experiment") or None),
        params=props_to_dict(proto.custom_properties),
        properties=typed,
        create_time=proto.create_time_since_epoch or None,
    )
