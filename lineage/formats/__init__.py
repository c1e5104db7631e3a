"""Export the provenance of an artifact (or of several): ``bundle``, ``openlineage``,
``prov`` and ``model-card``, one module each (and a run's metrics: ``tensorboard``).

Every format is built from ``store.provenance(ref)``, so every export follows the library's
one rule (lineage respects time, :mod:`lineage._timeline`): the target, every upstream
artifact and step, the other artifacts those steps read or wrote (so each step keeps all its
inputs and outputs), the runs and experiments of the steps, and the Config artifacts the
runs name (:mod:`lineage.formats._slice`). Several refs export the union of their
provenance in one document. A bundle also carries the earlier versions of its versioned
artifacts (records only).

The documents say only what happened: OpenLineage ``inputs``/``outputs`` and PROV
``used``/``wasGeneratedBy`` come from INPUT and OUTPUT events, the two the provenance rule
follows; declared, pending and internal events (``DECLARED_OUTPUT``, ``PENDING_OUTPUT``,
``INTERNAL_OUTPUT`` and their input sides) are no reads or productions. The bundle carries
every event as it is.

- ``bundle`` (:mod:`lineage.formats.bundle`): our ``lineage.v1.Bundle`` message, which
  :func:`~lineage.formats.bundle_import.import_bundle` reads into another store.
- ``openlineage`` (:mod:`lineage.formats.openlineage`): OpenLineage run events.
- ``prov`` (:mod:`lineage.formats.prov`): a W3C PROV-JSON document.
- ``model-card`` (:mod:`lineage.formats.model_card`): a Model Card in Markdown, filled
  from the record (evaluation, data, selection, environment), what only a person can
  write marked ``TO DO``.

JSON output has sorted keys and is the same for the same store content; no output holds the
store's password.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lineage.artifacts import Artifact
from lineage.errors import InvalidRef
from lineage.formats._slice import dumps, slice_of

if TYPE_CHECKING:
    from lineage.store import Ref, Store

__all__ = ["FORMATS", "Exported", "export"]

#: The export formats (``tensorboard`` takes a run, the others an artifact).
FORMATS = ("bundle", "openlineage", "prov", "model-card", "tensorboard")

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
    """``bundle``, ``openlineage``, ``prov`` or ``model-card``."""
    document: Any
    """A :data:`Bundle` message, a list of OpenLineage event dicts, a PROV-JSON dict, or
    the Model Card's Markdown text."""
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)

    def to_dict(self) -> Any:
        """The JSON form: the bundle's protobuf JSON mapping, the events, the PROV dict,
        ``{"markdown": text}`` for a model card."""
        if self.format == "model-card":
            return {"format": "model-card", "markdown": self.document}
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
        if self.format == "model-card" and not json_form:
            return str(self.document).encode("utf-8")
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
        data = self.to_bytes(json_form=suffix == ".json" and self.format != "model-card",
                             lines=suffix in (".jsonl", ".ndjson"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return out



def export(store: Store, ref: Ref | Sequence[Ref], format: str = "bundle",
           path: str | os.PathLike[str] | None = None) -> Exported:
    """Export the provenance of ``ref``: a bundle, OpenLineage events or W3C PROV-JSON.

    Args:
        store: the store to read.
        ref: the artifact (an Artifact, an id, ``"name"``, ``"name@3"``, ``"artifact:12"``),
            or a list or tuple of them: the union of their provenance in one document (one
            bundle keeps the order in time between all of it, see
            :mod:`lineage.formats.bundle_import`).
        format: ``"bundle"``, ``"openlineage"``, ``"prov"`` or ``"model-card"``.
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
    if isinstance(ref, (list, tuple)) and not ref:
        raise InvalidRef("nothing to export: give at least one artifact", ref="")
    secrets = tuple(s for s in (store._backend.password,) if s)
    doc: Any
    if format == "model-card":
        from lineage.formats.model_card import model_card

        if not isinstance(ref, (Artifact, int, str)):
            raise InvalidRef("a model card describes one artifact: give one ref", ref=ref)
        out = Exported(format=format, document=model_card(store, ref), secrets=secrets)
        if path is not None:
            out.write(path)
        return out
    sl = slice_of(store, ref, versions=format == "bundle")
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


