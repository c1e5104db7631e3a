"""Tags, notes and aliases on artifacts and runs, as a model registry keeps them.

- **Tags** (``key=value``) and a free-text **note** on an artifact version or a run:
  ``lineage.tag(store, "clf@2", stage="production")``, ``lineage.note(store, "baseline",
  "first try")``; ``lineage tag REF key=value``, ``lineage note REF "..."``.
- An **alias** names one version of an artifact: ``lineage.tag(store, "clf@2",
  alias="production")`` (``lineage tag clf@2 --alias production``) makes ``"clf@production"``
  a reference to version 2 everywhere a ref is accepted. Moving it to another version is
  recorded with who and when (:func:`alias_history`).

Where they live in MLMD (nothing else is written: the annotated artifact or run record is
never rewritten, so the recorded artifact cannot be wiped by a stub, and a run being
recorded cannot overwrite its tags):

- context type ``Annotation`` named by the target (``"artifact:12"``, ``"context:5"``):
  custom properties ``tag.<key>`` (one per tag) and ``note``; typed ``target``. It is
  attributed to the artifact (a run's is its child context), so raw MLMD readers find it.
- context type ``Alias`` named ``"<name>@<alias>"``: typed ``name``, ``alias``,
  ``artifact_id``, ``artifact_type``, ``version``, ``moved_by``, ``moved_at``; custom
  ``history`` lists every move (``artifact_id``, ``version``, ``from_id``, ``by``, ``host``,
  ``time``). It is attributed to every version it has named.

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> _ = store.put(lineage.Model(content=b"v1", name="clf"))
    >>> _ = store.put(lineage.Model(content=b"v2", name="clf"))
    >>> lineage.tag(store, "clf@1", stage="staging", alias="production", by="ana").tags
    {'stage': 'staging'}
    >>> store.get("clf@production").version
    1
    >>> _ = lineage.tag(store, "clf@2", alias="production", by="bob")
    >>> store.get("clf@production").version
    2
    >>> [(m.version, m.by) for m in lineage.alias_history(store, "clf@production")]
    [(1, 'ana'), (2, 'bob')]
"""

from __future__ import annotations

import getpass
import math
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert, _values
from lineage._schema import HIDDEN_CONTEXT_TYPES
from lineage.artifacts import Artifact
from lineage.errors import AmbiguousRef, NotFound, TagError
from lineage.records import Run

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = [
    "AliasMove",
    "Annotations",
    "alias_history",
    "all_annotations",
    "annotations_of",
    "note",
    "resolve_alias",
    "tag",
]

ANNOTATION_TYPE = "Annotation"
ALIAS_TYPE = "Alias"
_TAG = "tag."
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")
_KEY = re.compile(r"^[^\s=]{1,200}$")

Target = str
"""``"artifact:<id>"`` or ``"context:<id>"`` (a run)."""


@attrs.define(eq=False)
class AliasMove:
    """One setting or move of an alias: which version it names since when, and who said so."""

    alias: str
    """The alias (``"production"``)."""
    name: str
    """The artifact's logical name (``"clf"``): the alias is ``"clf@production"``."""
    artifact_id: int
    """The version it names from then on (MLMD artifact id)."""
    version: int | None
    """That version's number."""
    from_id: int | None
    """The artifact id it named before (None when it was set the first time)."""
    by: str
    """Who moved it."""
    host: str
    """From which host."""
    time: float
    """When (seconds since the epoch)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return attrs.asdict(self)


@attrs.define(eq=False)
class Annotations:
    """The tags, note and aliases of an artifact version or a run."""

    target: Target
    """``"artifact:<id>"`` or ``"context:<id>"``."""
    tags: dict[str, Any] = attrs.field(factory=dict)
    """Key → value (str, int, float or bool)."""
    note: str | None = None
    """The free-text note."""
    aliases: list[str] = attrs.field(factory=list)
    """The aliases naming this artifact version now (``["clf@production"]``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``target``, ``tags``, ``note``, ``aliases``."""
        return {"target": self.target, "tags": dict(self.tags), "note": self.note,
                "aliases": list(self.aliases)}

    def __str__(self) -> str:
        lines = [self.target]
        for key, value in sorted(self.tags.items()):
            lines.append(f"  {key}={value}")
        if self.note:
            lines.append(f"  note: {self.note}")
        if self.aliases:
            lines.append(f"  aliases: {', '.join(self.aliases)}")
        if len(lines) == 1:
            lines.append("  (no tags, note or aliases)")
        return "\n".join(lines)


# --- targets ------------------------------------------------------------------------------


def _target(store: Store, ref: Any, kind: str | None) -> tuple[str, pb.Artifact | pb.Context]:
    """("artifact", proto) or ("run", context) for a reference."""
    if kind not in (None, "artifact", "run"):
        raise TagError(f"kind={kind!r}: use 'artifact' or 'run'")
    if isinstance(ref, Run) or (hasattr(ref, "context") and hasattr(ref, "run_name")):
        return "run", store._resolve_run(int(ref.id))
    if isinstance(ref, Artifact) or kind == "artifact":
        return "artifact", store._resolve(ref)
    if kind == "run" or (isinstance(ref, str) and ref.startswith("context:")):
        return "run", store._resolve_run(ref)
    if isinstance(ref, int) or (isinstance(ref, str) and ref.startswith("artifact:")):
        return "artifact", store._resolve(ref)
    found: list[tuple[str, Any]] = []
    for what, resolve in (("artifact", store._resolve), ("run", store._resolve_run)):
        try:
            hit = resolve(ref)
        except NotFound:
            continue
        if what == "run" and _hidden(store, hit):
            continue  # an alias or metric record named like the ref: not a run
        found.append((what, hit))
    if not found:
        raise NotFound(f"no artifact or run named {ref!r} in {store.uri}; `lineage ls` and "
                       "`lineage ls runs` list them", ref=ref)
    if len(found) > 1:
        raise AmbiguousRef(
            f"{ref!r} names both an artifact (artifact:{found[0][1].id}) and a run "
            f"(context:{found[1][1].id}); say which: kind='artifact' or kind='run' "
            "(--artifact / --run), or use the id form",
            ref=ref,
        )
    return found[0]


def _hidden(store: Store, ctx: pb.Context) -> bool:
    ctype = store._types("context", [ctx.type_id]).get(ctx.type_id)
    return ctype is not None and ctype.name in HIDDEN_CONTEXT_TYPES


def _key(kind: str, proto: pb.Artifact | pb.Context) -> Target:
    return f"{'artifact' if kind == 'artifact' else 'context'}:{proto.id}"


def _type_id(store: Store, name: str, props: Mapping[str, int]) -> int:
    t = pb.ContextType(name=name)
    for key, ptype in props.items():
        t.properties[key] = ptype
    return store._register_type("context", t)


_ANNOTATION_PROPS = {"recorded_by": pb.STRING, "target": pb.STRING}
_ALIAS_PROPS = {
    "recorded_by": pb.STRING, "name": pb.STRING, "alias": pb.STRING, "artifact_id": pb.INT,
    "artifact_type": pb.STRING, "version": pb.INT, "moved_by": pb.STRING,
    "moved_at": pb.DOUBLE,
}


def _recorded_by() -> str:
    from lineage._recording import recorded_by

    return recorded_by()


# --- reading ------------------------------------------------------------------------------


def _from_context(ctx: pb.Context) -> Annotations:
    props = _convert.props_to_dict(ctx.custom_properties)
    tags = {k[len(_TAG):]: v for k, v in props.items() if k.startswith(_TAG)}
    note_text = props.get("note")
    target = ctx.properties["target"].string_value if "target" in ctx.properties else ctx.name
    return Annotations(target=target, tags=tags,
                       note=note_text if isinstance(note_text, str) and note_text else None)


def _annotation(store: Store, target: Target) -> pb.Context | None:
    if store._type_named("context", ANNOTATION_TYPE) is None:
        return None
    got = store._call("get_context_by_type_and_name", ANNOTATION_TYPE, target, missing=None)
    return got if got is not None and got.id else None


def _aliases_by_artifact(store: Store) -> dict[int, list[str]]:
    if store._type_named("context", ALIAS_TYPE) is None:
        return {}
    out: dict[int, list[str]] = {}
    for ctx in store._call("get_contexts_by_type", ALIAS_TYPE):
        if "artifact_id" in ctx.properties:
            out.setdefault(ctx.properties["artifact_id"].int_value, []).append(ctx.name)
    for names in out.values():
        names.sort()
    return out


def annotations_of(store: Store, ref: Any, *, kind: str | None = None) -> Annotations:
    """The tags, note and aliases of an artifact version or a run.

    Args:
        store: the store.
        ref: an artifact ref (``"clf@2"``, ``"clf@production"``, ``"artifact:12"``), a run
            ref (``"baseline"``, ``"context:5"``), an Artifact, a Run or an active run.
        kind: ``"artifact"`` or ``"run"`` when a name could be both.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Model(content=b"w", name="clf"))
        >>> lineage.annotations_of(store, "clf").to_dict()
        {'target': 'artifact:1', 'tags': {}, 'note': None, 'aliases': []}
    """
    what, proto = _target(store, ref, kind)
    key = _key(what, proto)
    ctx = _annotation(store, key)
    result = _from_context(ctx) if ctx is not None else Annotations(target=key)
    result.target = key
    if what == "artifact":
        result.aliases = _aliases_by_artifact(store).get(int(proto.id), [])
    return result


def all_annotations(store: Store) -> dict[Target, Annotations]:
    """Every annotated artifact and run: target → annotations (two calls, for searches).

    Example:
        >>> import lineage
        >>> lineage.all_annotations(lineage.connect(":memory:"))
        {}
    """
    out: dict[Target, Annotations] = {}
    if store._type_named("context", ANNOTATION_TYPE) is not None:
        for ctx in store._call("get_contexts_by_type", ANNOTATION_TYPE):
            found = _from_context(ctx)
            out[found.target] = found
    for artifact_id, names in _aliases_by_artifact(store).items():
        key = f"artifact:{artifact_id}"
        out.setdefault(key, Annotations(target=key)).aliases = names
    return out


# --- writing ------------------------------------------------------------------------------


def _check_value(key: str, value: Any) -> Any:
    if not isinstance(key, str) or not _KEY.match(key):
        raise TagError(f"tag key {key!r}: a non-empty text without spaces or '='")
    value = _values.plain(value, f"tag {key}", TagError)  # np.float32(0.9) -> 0.9; no NUL
    if isinstance(value, float) and not math.isfinite(value):
        raise TagError(f"tag {key}={value!r}: a tag value is a finite number or a text")
    if not isinstance(value, (str, int, float, bool)):
        raise TagError(f"tag {key}={value!r}: a tag value is a text, a number or a bool, "
                       f"not {type(value).__name__}")
    return value


def _write_annotation(
    store: Store, what: str, proto: pb.Artifact | pb.Context, change: Any
) -> Annotations:
    key = _key(what, proto)
    type_id = _type_id(store, ANNOTATION_TYPE, _ANNOTATION_PROPS)

    def attempt() -> pb.Context:
        ctx = _annotation(store, key)
        new = ctx is None
        if ctx is None:
            ctx = pb.Context(type_id=type_id, name=key)
            ctx.properties["recorded_by"].string_value = _recorded_by()
            ctx.properties["target"].string_value = key
        change(ctx)
        [ctx_id] = store._call("put_contexts", [ctx])  # the whole stored context, changed
        if new:
            ctx.id = ctx_id
            if what == "artifact":
                store._call("put_attributions_and_associations",
                            [pb.Attribution(context_id=ctx_id, artifact_id=proto.id)], [])
            else:
                store._call("put_parent_contexts",
                            [pb.ParentContext(child_id=ctx_id, parent_id=proto.id)])
        return ctx

    ctx = store._write_with_retry(attempt, f"annotate {key}")
    result = _from_context(ctx)
    if what == "artifact":
        result.aliases = _aliases_by_artifact(store).get(int(proto.id), [])
    return result


def tag(
    store: Store,
    ref: Any,
    tags: Mapping[str, Any] | None = None,
    /,
    *,
    remove: Iterable[str] = (),
    alias: str | None = None,
    by: str | None = None,
    kind: str | None = None,
    **more: Any,
) -> Annotations:
    """Set (or ``remove``) tags of an artifact version or a run; optionally point an alias
    at the artifact version.

    Args:
        store: the store (opened writable).
        ref: what to tag (see :func:`annotations`).
        tags: ``{key: value}``; values are texts, numbers or bools. Keyword arguments add
            more (``stage="production"``).
        remove: tag keys to delete.
        alias: make ``"<name>@<alias>"`` name this artifact version (moving it from the one
            it named, recorded with ``by`` and the time).
        by: who moves the alias (default: ``$LINEAGE_USER``, else the login name).
        kind: ``"artifact"`` or ``"run"`` when a name could be both.

    Returns:
        The annotations after the change.

    Raises:
        TagError: a malformed key, value or alias. NotFound, AmbiguousRef: see ``ref``.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("baseline", store=store):
        ...     pass
        >>> lineage.tag(store, "baseline", {"stage": "candidate"}, reviewed=True).tags
        {'reviewed': True, 'stage': 'candidate'}
        >>> lineage.tag(store, "baseline", remove=["reviewed"]).tags
        {'stage': 'candidate'}
    """
    wanted = {**(tags or {}), **more}
    checked = {k: _check_value(k, v) for k, v in wanted.items()}
    dropped = list(remove)
    if isinstance(remove, str):
        dropped = [remove]
    what, proto = _target(store, ref, kind)
    if alias is not None:
        _check_alias(alias)
        if what != "artifact":
            raise TagError(f"an alias names an artifact version; {ref!r} is a run")
    store._check_writable(f"tag {ref!r}")
    result: Annotations | None = None
    if checked or dropped:

        def change(ctx: pb.Context) -> None:
            for key in dropped:
                if (_TAG + key) in ctx.custom_properties:
                    del ctx.custom_properties[_TAG + key]
            for key, value in checked.items():
                _convert.set_value(ctx.custom_properties[_TAG + key], value)

        result = _write_annotation(store, what, proto, change)
    if alias is not None:
        assert isinstance(proto, pb.Artifact)
        _move_alias(store, proto, alias, by)
    if result is None or alias is not None:
        return annotations_of(store, f"artifact:{proto.id}" if what == "artifact"
                           else f"context:{proto.id}")
    return result


def note(store: Store, ref: Any, text: str | None, *, kind: str | None = None) -> Annotations:
    """Set the free-text note of an artifact version or a run (``None`` or ``""`` clears it).

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Dataset(content=b"x", name="iris"))
        >>> lineage.note(store, "iris", "from the UCI repository, 1936").note
        'from the UCI repository, 1936'
    """
    if text is not None and not isinstance(text, str):
        raise TagError(f"a note is a text, not {type(text).__name__}")
    if text:
        _values.plain(text, "the note", TagError)
    what, proto = _target(store, ref, kind)
    store._check_writable(f"write a note on {ref!r}")

    def change(ctx: pb.Context) -> None:
        if text:
            _convert.set_value(ctx.custom_properties["note"], text)
        elif "note" in ctx.custom_properties:
            del ctx.custom_properties["note"]

    return _write_annotation(store, what, proto, change)


# --- aliases ------------------------------------------------------------------------------


def _check_alias(alias: Any) -> None:
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise TagError(
            f"alias {alias!r}: a name starting with a letter or '_', then letters, digits, "
            "'_', '.', '-' (at most 100); not a number, which would be a version"
        )


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return os.environ.get("LINEAGE_USER") or getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without passwd entry)
        return f"uid:{os.getuid()}"


def _logical(proto: pb.Artifact) -> tuple[str, int | None]:
    version = proto.properties.get("version")
    number = version.int_value if version is not None and version.int_value else None
    name = proto.name
    if number is not None and name.endswith(f"@{number}"):
        name = name[: -len(f"@{number}")]
    return name, number


def _move_alias(store: Store, proto: pb.Artifact, alias: str, by: str | None) -> AliasMove:
    name, version = _logical(proto)
    if not name:
        raise TagError(f"artifact:{proto.id} has no name; an alias names a version of a name")
    key = f"{name}@{alias}"
    type_id = _type_id(store, ALIAS_TYPE, _ALIAS_PROPS)
    types = store._types("artifact", [proto.type_id])
    atype = types.get(proto.type_id)
    move = AliasMove(alias=alias, name=name, artifact_id=int(proto.id), version=version,
                     from_id=None, by=_who(by), host=socket.gethostname(), time=time.time())

    def attempt() -> AliasMove:
        ctx = store._call("get_context_by_type_and_name", ALIAS_TYPE, key, missing=None)
        if ctx is None or not ctx.id:
            ctx = pb.Context(type_id=type_id, name=key)
            ctx.properties["recorded_by"].string_value = _recorded_by()
            ctx.properties["name"].string_value = name
            ctx.properties["alias"].string_value = alias
            history: list[Any] = []
        else:
            move.from_id = ctx.properties["artifact_id"].int_value or None
            old = _convert.from_value(ctx.custom_properties["history"]) if (
                "history" in ctx.custom_properties) else []
            history = list(old) if isinstance(old, list) else []
        ctx.properties["artifact_id"].int_value = int(proto.id)
        ctx.properties["artifact_type"].string_value = atype.name if atype is not None else ""
        if version is not None:
            ctx.properties["version"].int_value = version
        elif "version" in ctx.properties:
            del ctx.properties["version"]
        ctx.properties["moved_by"].string_value = move.by
        ctx.properties["moved_at"].double_value = round(move.time, 3)
        history.append({k: v for k, v in move.to_dict().items() if k not in ("alias", "name")})
        ctx.custom_properties["history"].CopyFrom(_convert.to_value(history))
        [ctx_id] = store._call("put_contexts", [ctx])  # the whole stored context, changed
        store._call("put_attributions_and_associations",
                    [pb.Attribution(context_id=ctx_id, artifact_id=proto.id)], [])
        return move

    return store._write_with_retry(attempt, f"set the alias {key!r}")


def _split(ref: str) -> tuple[str, str] | None:
    name, sep, alias = ref.rpartition("@")
    if not sep or not name or not alias or alias.isdigit():
        return None
    return name, alias


def resolve_alias(store: Store, ref: str, type_name: str | None = None) -> pb.Artifact | None:
    """The artifact ``"name@alias"`` names, or None when it is no alias (the hook of
    ``Store._resolve``: one indexed read, plus the artifact).

    Example:
        >>> import lineage
        >>> resolve_alias(lineage.connect(":memory:"), "clf@production") is None
        True
    """
    parts = _split(ref)
    if parts is None or store._type_named("context", ALIAS_TYPE) is None:
        return None
    ctx = store._call("get_context_by_type_and_name", ALIAS_TYPE, ref, missing=None)
    if ctx is None or not ctx.id or "artifact_id" not in ctx.properties:
        return None
    if type_name and ctx.properties["artifact_type"].string_value not in ("", type_name):
        return None
    found = store._call("get_artifacts_by_id", [ctx.properties["artifact_id"].int_value])
    return found[0] if found else None


def alias_history(store: Store, ref: str) -> list[AliasMove]:
    """Every move of the alias ``"name@alias"``, oldest first.

    Raises:
        NotFound: no such alias.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Model(content=b"w", name="clf"))
        >>> _ = lineage.tag(store, "clf", alias="prod", by="ana")
        >>> [(m.alias, m.version, m.from_id, m.by) for m in alias_history(store, "clf@prod")]
        [('prod', 1, None, 'ana')]
    """
    parts = _split(ref) if isinstance(ref, str) else None
    if parts is None:
        raise TagError(f"{ref!r} is not an alias reference; write it 'name@alias'")
    ctx = None
    if store._type_named("context", ALIAS_TYPE) is not None:
        ctx = store._call("get_context_by_type_and_name", ALIAS_TYPE, ref, missing=None)
    if ctx is None or not ctx.id:
        raise NotFound(f"no alias {ref!r} in {store.uri}", ref=ref)
    raw = _convert.from_value(ctx.custom_properties["history"]) if (
        "history" in ctx.custom_properties) else []
    name, alias = parts
    return [AliasMove(alias=alias, name=name, artifact_id=int(h["artifact_id"]),
                      version=h.get("version"), from_id=h.get("from_id"), by=str(h.get("by")),
                      host=str(h.get("host", "")), time=float(h.get("time", 0.0)))
            for h in (raw if isinstance(raw, list) else []) if isinstance(h, dict)]
