"""Export and import: the public names of :mod:`lineage.formats`, where each format lives
in a module of its own (bundle, OpenLineage, W3C PROV).

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> _ = store.put(lineage.Model(content=b"w", name="clf"))
    >>> export(store, "clf", "prov").format
    'prov'
"""

from __future__ import annotations

from lineage.formats import FORMATS, Exported, export
from lineage.formats.bundle import FORMAT_VERSION, Bundle, read_bundle
from lineage.formats.bundle_import import ImportResult, import_bundle

__all__ = [
    "FORMATS",
    "FORMAT_VERSION",
    "Bundle",
    "Exported",
    "ImportResult",
    "export",
    "import_bundle",
    "read_bundle",
]
