"""Records read back from a store: :class:`Execution` and :class:`Run`."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Execution", "Run"]


@attrs.define(eq=False)
class Execution:
    """One recorded call of a step (or any MLMD execution).

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> store.executions()
        []
    """

    id: int
    """MLMD execution id."""
    type_name: str
    """MLMD execution type name; for our steps, the step name."""
    name: str
    """The step: the type name for our steps, the last dotted part for others (TFX)."""
    state: str
    """``RUNNING``, ``COMPLETE``, ``FAILED``, ``CACHED``, ``CANCELED``, ``NEW`` or ``UNKNOWN``."""
    params: dict[str, Any] = attrs.field(factory=dict)
    """Parameters: custom properties of our steps; typed and custom properties of others."""
    error: str | None = None
    """``"ValueError: message"`` for a failed step, else ``None``."""
    inputs: list[int] = attrs.field(factory=list)
    """Ids of the input artifacts (INPUT-like events), in event order."""
    outputs: list[int] = attrs.field(factory=list)
    """Ids of the output artifacts (OUTPUT-like events), in event order."""
    properties: dict[str, Any] = attrs.field(factory=dict)
    """Code, environment and timing of our steps (``source_hash``, ``git_commit``, …)."""
    base_type: str | None = None
    """MLMD base type (``TRAIN``, ``PROCESS``, …) or ``None``."""
    create_time: int | None = None
    """Milliseconds since the epoch when MLMD first stored the execution."""
    update_time: int | None = None
    """Milliseconds since the epoch of the last change."""
    mlmd_name: str | None = None
    """The MLMD execution name (unique per type)."""
    ours: bool = False
    """Whether ``lineage`` recorded it (its type carries ``recorded_by``)."""

    @property
    def ref(self) -> str:
        """``"execution:<id>"``."""
        return f"execution:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of a step in query results."""
        return {
            "id": self.id,
            "type": self.type_name,
            "name": self.name,
            "state": self.state,
            "params": self.params,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
        }


@attrs.define(eq=False)
class Run:
    """A run (or any MLMD context): a group of executions and artifacts."""

    id: int
    """MLMD context id."""
    type_name: str
    """``Run``, ``Experiment``, or a foreign context type (``pipeline_run``)."""
    name: str
    """The context's unique name."""
    run_name: str | None = None
    """The name the user gave (several runs may share it; ``name`` is unique)."""
    experiment: str | None = None
    """Name of the parent experiment, if any."""
    params: dict[str, Any] = attrs.field(factory=dict)
    """Run parameters (custom properties)."""
    properties: dict[str, Any] = attrs.field(factory=dict)
    """Typed properties (start and end time, status)."""
    create_time: int | None = None
    """Milliseconds since the epoch."""

    @property
    def ref(self) -> str:
        """``"context:<id>"``."""
        return f"context:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of a run in query results."""
        return {
            "id": self.id,
            "type": self.type_name,
            "name": self.name,
            "run_name": self.run_name,
            "experiment": self.experiment,
            "params": self.params,
        }
