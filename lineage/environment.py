"""Frozen environments: every installed distribution, Python, OS, CPU and GPU, recorded
once per distinct environment and named by the executions and runs that ran in it.

An :class:`Environment` artifact's content is the dict of
:func:`lineage._env.environment_facts`; its fingerprint is that dict's canonical-JSON
digest, so the same environment is the same record (``store.put`` semantics), whichever
process or machine records it. Its properties hold the same dict (``packages`` as a
packed value: it is long), so ``verify`` can re-derive the fingerprint from the record.
Executions and runs point at theirs with the typed ``environment`` property (an artifact
id), which keeps it out of provenance graphs: an environment is a fact about a step, not
data it read.

Example:
    >>> import lineage
    >>> from lineage.environment import environment_of, record_environment
    >>> store = lineage.connect(":memory:")
    >>> env_id = record_environment(store)
    >>> env_id == record_environment(store)
    True
    >>> env = environment_of(store, env_id)
    >>> env.type_name, "networkx" in env.packages
    ('Environment', True)
"""

from __future__ import annotations

import threading
import warnings
import weakref
from typing import TYPE_CHECKING, Any

from lineage import _env
from lineage.artifacts import Artifact
from lineage.errors import LineageError

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = ["Environment", "environment_of", "record_environment", "requirements"]

#: The logical name of every recorded environment (versions: distinct environments, in
#: the order they were first seen).
ENVIRONMENT_NAME = "environment"


class Environment(Artifact):
    """A frozen software environment: Python, OS, CPU, GPUs and installed packages."""

    python: str
    os: str

    @property
    def packages(self) -> dict[str, str]:
        """Distribution name → version."""
        found = self.properties.get("packages")
        if not isinstance(found, dict):
            return {}
        return {str(k): str(v) for k, v in sorted(found.items())}

    def recorded_content(self) -> tuple[Any, bool] | None:
        """The content the fingerprint was computed from, re-derived from the record
        (exactly: a mismatch means the record was changed)."""
        keys = ("python", "os", "machine", "cpu", "cpu_count", "gpus", "packages")
        if not all(k in self.properties for k in keys):
            return None
        return {k: self.properties[k] for k in keys}, True


_recorded: weakref.WeakKeyDictionary[Store, int] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def record_environment(store: Store) -> int | None:
    """The artifact id of this process's environment in ``store``, recorded on first use
    (once per store object and process; the same environment is found, not duplicated).

    Returns ``None`` (with a ``RuntimeWarning``) when it cannot be recorded: recording a
    step never fails because of it.
    """
    found = _recorded.get(store)
    if found is not None:
        return found
    with _lock:
        found = _recorded.get(store)
        if found is not None:
            return found
        facts = _env.environment_facts()
        artifact = Environment(content=facts, name=ENVIRONMENT_NAME, **facts)
        try:
            from lineage._signoff import put_unattributed

            recorded = put_unattributed(store, artifact)
        except LineageError as exc:
            warnings.warn(f"could not record the environment in {store.uri}: {exc}",
                          RuntimeWarning, stacklevel=3)
            return None
        if recorded.id is None:  # pragma: no cover - put always fills the id
            return None
        _recorded[store] = int(recorded.id)
        return int(recorded.id)


def environment_of(store: Store, artifact_id: int | None) -> Environment | None:
    """The recorded environment with this id, or ``None`` (no id, or not an Environment)."""
    if not artifact_id:
        return None
    found = store.artifacts_by_id([int(artifact_id)]).get(int(artifact_id))
    return found if isinstance(found, Environment) else None


def requirements(env: Environment | dict[str, str]) -> str:
    """A pip requirements file pinning every package of an environment.

    Example:
        >>> print(requirements({"numpy": "1.26.4", "pandas": "2.2.2"}), end="")
        numpy==1.26.4
        pandas==2.2.2
    """
    packages = env.packages if isinstance(env, Environment) else env
    return "".join(f"{name}=={version}\n" for name, version in sorted(packages.items()))
