"""Plan and apply: make the live database match the pipeline specs (sqlmesh style).

`plan_pipelines` renders, `apply_pipelines` executes the same typed operations (the
destructive ones only when approved); `applied_state` tells the listener and workers
whether a pipeline is ready and which names to write — during a blue/green re-embedding,
those of the new column being filled.
"""

from v10r.reconcile.apply import ApplyResult, apply_pipelines
from v10r.reconcile.locks import LockSettings
from v10r.reconcile.plan import Plan, plan_pipelines
from v10r.reconcile.specset import SpecSet
from v10r.reconcile.state import AppliedPipeline, applied_state

__all__ = ["AppliedPipeline", "ApplyResult", "LockSettings", "Plan", "SpecSet",
           "applied_state", "apply_pipelines", "plan_pipelines"]
