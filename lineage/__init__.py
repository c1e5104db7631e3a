"""lineage: which data, code and parameters produced this model?

Records datasets, pipeline steps and models as typed artifacts and executions in
Google's ML-Metadata (MLMD), builds a networkx lineage graph over the store and draws
Graphviz diagrams for audits.

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> store.put(lineage.Metrics({"acc": 0.93}, name="eval")).version
    1
"""

from __future__ import annotations

import os as _os

# MLMD's C++ client logs two glog INFO lines ("Connecting to database.", "Connection to
# database succeed.") on stderr for every PostgreSQL/MySQL connection. glog reads this
# once, when ml_metadata's extension loads (below); warnings and errors still show, and a
# value set by the user wins.
_os.environ.setdefault("GLOG_minloglevel", "1")

from lineage._params import ParamWarning
from lineage.approvals import Approval, ApprovalCheck, approve
from lineage.artifacts import Artifact, Config, Dataset, Metrics, Model
from lineage.audits import AuditReport
from lineage.checkout import Checkout
from lineage.doctor import DoctorReport
from lineage.environment import Environment
from lineage.errors import (
    AmbiguousRef,
    ArtifactError,
    BundleError,
    CacheWarning,
    ConcurrentWriteError,
    ConnectionFailed,
    ContentError,
    CorruptObject,
    FingerprintError,
    InvalidRef,
    KeepWarning,
    LineageError,
    LineageWarning,
    MissingObject,
    NotFound,
    NotKept,
    ReadOnlyStore,
    RecordingWarning,
    RefError,
    RenderError,
    SearchError,
    SignatureError,
    StepError,
    StoreError,
    TagError,
    TypeConflict,
)
from lineage.evidence import Evidence
from lineage.export import Exported, ImportResult
from lineage.fingerprint import fingerprint, fingerprint_content
from lineage.formats.tensorboard import log_tensorboard
from lineage.graph import LineageGraph
from lineage.housekeeping import Collection, Usage
from lineage.metrics import (
    ConfusionMatrix,
    RunMetrics,
    log_confusion_matrix,
    log_metrics,
    run_metrics,
)
from lineage.plot import Chart
from lineage.queries import (
    ArtifactCheck,
    Comparison,
    Impact,
    LineageDiff,
    Provenance,
    Verification,
)
from lineage.records import Execution, Run
from lineage.remotes import Transfer
from lineage.render import render
from lineage.runs import ActiveRun, current_run, log_params, run
from lineage.search import RunSearch, RunSummary, search_runs
from lineage.steps import log_artifact, step
from lineage.store import Store, connect
from lineage.tags import (
    AliasMove,
    Annotations,
    alias_history,
    all_annotations,
    annotations_of,
    note,
    tag,
)

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "AliasMove",
    "AmbiguousRef",
    "Annotations",
    "Approval",
    "ApprovalCheck",
    "Artifact",
    "ArtifactCheck",
    "ArtifactError",
    "AuditReport",
    "BundleError",
    "CacheWarning",
    "Chart",
    "Checkout",
    "Collection",
    "Comparison",
    "ConcurrentWriteError",
    "Config",
    "ConfusionMatrix",
    "ConnectionFailed",
    "ContentError",
    "CorruptObject",
    "Dataset",
    "DoctorReport",
    "Environment",
    "Evidence",
    "Execution",
    "Exported",
    "FingerprintError",
    "Impact",
    "ImportResult",
    "InvalidRef",
    "KeepWarning",
    "LineageDiff",
    "LineageError",
    "LineageGraph",
    "LineageWarning",
    "Metrics",
    "MissingObject",
    "Model",
    "NotFound",
    "NotKept",
    "ParamWarning",
    "Provenance",
    "ReadOnlyStore",
    "RecordingWarning",
    "RefError",
    "RenderError",
    "Run",
    "RunMetrics",
    "RunSearch",
    "RunSummary",
    "SearchError",
    "SignatureError",
    "StepError",
    "Store",
    "StoreError",
    "TagError",
    "Transfer",
    "TypeConflict",
    "Usage",
    "Verification",
    "__version__",
    "alias_history",
    "all_annotations",
    "annotations_of",
    "approve",
    "connect",
    "current_run",
    "fingerprint",
    "fingerprint_content",
    "log_artifact",
    "log_confusion_matrix",
    "log_metrics",
    "log_params",
    "log_tensorboard",
    "note",
    "render",
    "run",
    "run_metrics",
    "search_runs",
    "step",
    "tag",
]
