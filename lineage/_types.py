"""One MLMD type per name, even with many writers; queries that see every duplicate.

MLMD's ``put_*_type`` looks a type up by name and inserts it when it is missing, but its
``Type`` table has no unique key on (name, kind): on PostgreSQL and MariaDB, processes
that record a new step at the same moment each insert one, and every later
``get_executions_by_type(name)`` reads only one of them, so records of the others go
missing from queries without an error.

The ``Type`` table does have a unique key: ``external_id``. Every type ``lineage``
creates carries ``lineage:<kind>:<name>``, so the database itself refuses the second
insert of a race; the loser runs its ``put`` again and finds the winner's type by name.
A type that another tool created with an external id of its own keeps it.

Stores written before this (or by other tools) may already hold duplicates. Every query
by type name goes through :func:`routed`: when the store holds more than one type of that
name, the nodes of all of them are read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = ["NOT_ROUTED", "duplicated_names", "external_id", "is_creation_race", "routed"]

#: ``routed`` returns this when the call needs no routing (the plain MLMD call is right).
NOT_ROUTED: Any = object()

_KINDS = ("artifact", "execution", "context")
_PREFIX = "lineage:"
_EXTERNAL_ID_MAX = 255  # MLMD's VARCHAR(255) on MySQL and PostgreSQL


def external_id(kind: str, name: str) -> str | None:
    """The external id ``lineage`` gives a type it creates (``None`` if too long).

    Example:
        >>> external_id("execution", "train")
        'lineage:execution:train'
    """
    value = f"{_PREFIX}{kind}:{name}"
    return value if len(value.encode("utf-8", "surrogatepass")) <= _EXTERNAL_ID_MAX else None


def is_creation_race(cause: BaseException | None) -> bool:
    """Whether a failed ``put_*_type`` lost a race to create the same type: the unique
    key on ``Type.external_id`` refused the second insert (SQLite: "UNIQUE constraint
    failed: Type.external_id"; PostgreSQL: "duplicate key value ..."; MySQL: "Duplicate
    entry"; MLMD's own check: "Conflict of external_id")."""
    text = str(cause).lower()
    return "external_id" in text and any(
        s in text for s in ("unique", "duplicate", "conflict of external_id"))


#: How long a store object trusts its list of duplicated type names, in seconds (a
#: long-lived reader, the web UI say, sees duplicates that older writers add later).
DUPLICATES_TTL = 60.0


def duplicated_names(store: Store, kind: str) -> dict[str, frozenset[int]]:
    """The type names of ``kind`` that the store holds more than once, with their ids
    (read again after :data:`DUPLICATES_TTL` seconds: ``lineage`` itself never creates a
    duplicate now, but older versions and other tools may)."""
    cache = store._duplicated_types
    now = time.monotonic()
    found = cache.get(kind)
    if found is None or now - found[0] > DUPLICATES_TTL:
        ids: dict[str, set[int]] = {}
        for t in store._call(f"get_{kind}_types", route=False):
            ids.setdefault(t.name, set()).add(t.id)
        found = cache[kind] = (now, {name: frozenset(i) for name, i in ids.items()
                                     if len(i) > 1})
    return found[1]


def routed(store: Store, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The answer of a by-type-name query that covers every type of that name, or
    :data:`NOT_ROUTED` when the store holds that name once (the plain call is right).

    ``get_<kind>s_by_type(name)`` and ``get_<kind>_by_type_and_name(type, name)`` are
    routed; anything else is not. MLMD has no query by type id, and its filter queries
    are gone in ml-metadata 1.21, so a duplicated name is answered from all nodes of the
    kind, filtered by type id here: slower on a big store, and only for such names.
    """
    if not args or not isinstance(args[0], str) or kwargs:
        return NOT_ROUTED
    for kind in _KINDS:
        if method == f"get_{kind}s_by_type":
            one = False
            break
        if method == f"get_{kind}_by_type_and_name":
            one = True
            break
    else:
        return NOT_ROUTED
    type_ids = duplicated_names(store, kind).get(args[0])
    if type_ids is None:
        return NOT_ROUTED
    found = [n for n in store._call(f"get_{kind}s", route=False) if n.type_id in type_ids]
    if one:
        if len(args) < 2 or not isinstance(args[1], str):
            return NOT_ROUTED
        named = [n for n in found if n.name == args[1]]
        return min(named, key=lambda n: n.id) if named else None
    return sorted(found, key=lambda n: n.id)
