"""The startup's Flux calls: resume what the shutdown suspended, then ask Flux to reconcile.

Both send their patches at once, at most MAX_PARALLEL_CALLS together (the shutdown's suspend and
cordon do the same through for_each_node): one after another, each resume also followed by an
fsync'd ledger write, they took most of the ~0.9 s of flux_resume and flux_ready on a 3+12 twin
(issue 29).
"""

from __future__ import annotations

from typing import cast

from hecate.adapters.kube.types import FluxKind
from hecate.core.plans import StageStatus, StartupOptions
from hecate.errors import KubeError
from hecate.flows.context import FlowContext, Stage, check_cancel
from hecate.flows.each_node import for_each_node
from hecate.flows.ledger import Ledger, save_ledger, split_key
from hecate.flows.report import now_rfc3339

__all__ = ["request_reconcile", "resume_flux"]


def resume_flux(ctx: FlowContext, stage: Stage, ledger: Ledger, options: StartupOptions) -> None:
    """Resume every object in `ledger.suspended`; one the API refuses stays there (the stage
    partial, a note naming it) for the next startup."""
    startup = ctx.config.startup
    check_cancel(ctx)
    branch = options.force_flux_branch or startup.force_flux_branch
    if branch:
        ctx.kube.set_git_branch(startup.flux_namespace, startup.flux_git_repository, branch)
        stage.note(f"GitRepository branch set to {branch}")
    recorded = list(ledger.suspended)
    done: list[str] = []  # list.append is atomic: the pool's threads share it

    def resume(key: str) -> None:
        check_cancel(ctx)  # a cancel stops the patches not yet sent
        kind, namespace, name = split_key(key)
        ctx.kube.set_suspend(cast(FluxKind, kind), namespace, name, False)
        done.append(key)

    try:
        errors = for_each_node(recorded, resume)
    finally:
        # The ledger is written once, after the patches (even when a cancel cut them short):
        # until then every object is still in it on disk, so a crash mid-way has the next
        # startup resume them all again, which is harmless (resuming an object that is not
        # suspended changes nothing). Only the resumes that landed leave it.
        if recorded:
            resumed = set(done)
            ledger.suspended = [key for key in ledger.suspended if key not in resumed]
            save_ledger(ctx.config.state_dir, ledger)
    for key in recorded:
        exc = errors[key]
        if exc is not None:
            stage.status = StageStatus.PARTIAL
            stage.note(f"{key}: {exc}")
    stage.note(f"resumed {len(done)}")
    request_reconcile(ctx)


def request_reconcile(ctx: FlowContext) -> None:
    """Annotate Flux's GitRepository, then every unsuspended Kustomization, to reconcile now.
    The Kustomizations' requests are all attempted; any refused raises a KubeError naming them.

    The GitRepository's request goes first, alone (one round trip): it is the one that matters,
    a KubeError there stops the rest as before, and the Kustomizations' requests are then sent
    together. (Flux itself does not need the order: each request only asks its controller to
    reconcile soon, and a Kustomization reconciles again when its source gets a new revision.)
    """
    startup = ctx.config.startup
    at = now_rfc3339(ctx.clock())
    check_cancel(ctx)
    ctx.kube.request_reconcile(
        "GitRepository", startup.flux_namespace, startup.flux_git_repository, at
    )
    objects = {o.key: o for o in ctx.kube.flux_objects("Kustomization") if not o.suspended}

    def request(key: str) -> None:
        check_cancel(ctx)
        obj = objects[key]
        ctx.kube.request_reconcile(obj.kind, obj.namespace, obj.name, at)

    errors = for_each_node(list(objects), request)
    failed = {key: exc for key, exc in errors.items() if exc is not None}
    if failed:
        key, exc = next(iter(failed.items()))
        raise KubeError(f"cannot request a reconcile of {', '.join(failed)} ({key}: {exc})")
