"""Export the provenance of an artifact: ``bundle``, ``openlineage`` and ``prov``, one
module each.

Every format is built from ``store.provenance(ref)``: the target, every upstream artifact
and step, the other artifacts those steps read or wrote (so each step keeps all its inputs
and outputs), the runs and experiments of the steps, and the Config artifacts the runs name
(:mod:`lineage.formats._slice`).

- ``bundle`` (:mod:`lineage.formats.bundle`): our ``lineage.v1.Bundle`` message, which
  :func:`~lineage.formats.bundle_import.import_bundle` reads into another store.
- ``openlineage`` (:mod:`lineage.formats.openlineage`): OpenLineage run events.
- ``prov`` (:mod:`lineage.formats.prov`): a W3C PROV-JSON document.

JSON output has sorted keys and is the same for the same store content; no output holds the
store's password.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lineage.errors import InvalidRef
from lineage.formats._slice import dumps, slice_of

if TYPE_CHECKING:
    from lineage.store import Ref, Store

__all__ = ["FORMATS", "Exported", "export"]

#: The export formats (``tensorboard`` takes a run, the others an artifact).
FORMATS = ("bundle", "openlineage", "prov", "tensorboard")

@attrs.define(eq=False)
class Exported:
    """An export: the document in one format, and how to write it.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> m = store.put(lineage.Model(content=b"w", name="clf"))
        >>> doc = store.export("clf", "prov")
        >>> doc.format, sorted(doc.to_dict()["entity"])
        ('prov', ['lineage:artifact/1'])
    """

    format: str
    """``bundle``, ``openlineage`` or ``prov``."""
    document: Any
    """A :data:`Bundle` message, a list of OpenLineage event dicts, or a PROV-JSON dict."""
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)

    def to_dict(self) -> Any:
        """The JSON form: the bundle's protobuf JSON mapping, the events, the PROV dict."""
        if self.format == "bundle":
            from lineage.formats.bundle import bundle_dict

            return bundle_dict(self.document)
        if self.format == "tensorboard":  # folder -> tags and point counts
            return {folder or ".": {"scalars": {t: len(p) for t, p in sorted(r.scalars.items())},
                                    "confusion_matrices": len(r.matrices)}
                    for folder, r in sorted(self.document.items())}
        return self.document

    def to_bytes(self, *, json_form: bool | None = None, lines: bool = False) -> bytes:
        """Encode: binary protobuf for a bundle unless ``json_form``; JSON otherwise
        (``lines``: one OpenLineage event per line)."""
        if self.format == "bundle" and not json_form:
            data: bytes = self.document.SerializeToString(deterministic=True)
            return data
        if self.format == "openlineage" and lines:
            return "".join(dumps(e, indent=None) + "\n" for e in self.document).encode()
        return (dumps(self.to_dict(), indent=2) + "\n").encode()

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write to ``path`` (a bundle as JSON when it ends in ``.json``; OpenLineage as
        JSON lines for ``.jsonl``/``.ndjson``); return the path."""
        out = Path(path)
        if self.format == "tensorboard":  # a log dir of event files
            from lineage.formats.tensorboard import write_logdir

            write_logdir(self.document, out)
            return out
        suffix = out.suffix.lower()
        data = self.to_bytes(json_form=suffix == ".json",
                             lines=suffix in (".jsonl", ".ndjson"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return out



def export(store: Store, ref: Ref, format: str = "bundle",
           path: str | os.PathLike[str] | None = None) -> Exported:
    """Export the provenance of ``ref``: a bundle, OpenLineage events or W3C PROV-JSON.

    Args:
        store: the store to read.
        ref: the artifact (an Artifact, an id, ``"name"``, ``"name@3"``, ``"artifact:12"``).
        format: ``"bundle"``, ``"openlineage"`` or ``"prov"``.
        path: also write the export there (see :meth:`Exported.write`).

    Raises:
        InvalidRef: an unknown format. NotFound: ``ref`` names nothing.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> m = store.put(lineage.Model(content=b"w", name="clf"))
        >>> [a.name for a in store.export("clf").document.artifacts]
        ['clf@1']
    """
    if format not in FORMATS:
        raise InvalidRef(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}",
                         ref=format)
    if format == "tensorboard":  # a run's series as event files (lineage.formats.tensorboard)
        from lineage.formats.tensorboard import export_run

        out = Exported(format=format, document=export_run(store, ref))  # type: ignore[arg-type]
        if path is not None:
            out.write(path)
        return out
    sl = slice_of(store, ref)
    secrets = tuple(s for s in (store._backend.password,) if s)
    doc: Any
    if format == "bundle":
        from lineage.formats.bundle import to_bundle

        doc = to_bundle(sl, secrets)
    elif format == "openlineage":
        from lineage.formats.openlineage import to_openlineage

        doc = to_openlineage(sl, secrets)
    else:
        from lineage.formats.prov import to_prov

        doc = to_prov(sl, secrets)
    out = Exported(format=format, document=doc, secrets=secrets)
    if path is not None:
        out.write(path)
    return out


