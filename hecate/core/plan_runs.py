"""Which of a plan's node runs share one ansible-playbook (pure; the plan's data says it, the
dry run prints it, the runner and the flows follow it). Every ansible-playbook process costs
0.6-1.0 s and about 0.8 CPU-s before its first task, so two node runs with no decision from
Python between them are one process:

* :func:`playbook_batches`: playbook stages in a row (a shutdown's stops and poweroffs);
* :func:`reads_ahead`: a stage whose ansible-playbook also takes the next stage's first read
  (`StageSpec.reads_ahead`): the startup's start_servers ends with etcd_quorum's first read of
  the servers, which that stage judges as if it had read them itself; its later reads, after a
  decision to wait, are runs of their own.
"""

from __future__ import annotations

from hecate.core.plans import StageSpec


def playbook_batches(stages: tuple[StageSpec, ...]) -> list[tuple[int, int]]:
    """The (start, end) index ranges of `stages` that run as one ansible-playbook: two or more
    playbook stages in a row that will run (skipped stages between them belong to the range,
    at its ends they do not). Python decides nothing between them, so nothing is lost by
    running them together; each is still recorded and judged on its own."""
    ranges: list[tuple[int, int]] = []
    index = 0
    while index < len(stages):
        if stages[index].playbook is None or stages[index].skip is not None:
            index += 1
            continue
        runnable, end = 0, index
        for later in range(index, len(stages)):
            spec = stages[later]
            if spec.skip is not None:
                continue
            if spec.playbook is None:
                break
            runnable, end = runnable + 1, later + 1
        if runnable >= 2:
            ranges.append((index, end))
        index = end
    return ranges


def reads_ahead(stages: tuple[StageSpec, ...]) -> dict[str, str]:
    """Stage name -> the stage whose first read its ansible-playbook takes (a stage that runs
    and says so: `StageSpec.reads_ahead`, which the flow's step follows)."""
    return {s.name: s.reads_ahead for s in stages if s.reads_ahead is not None and s.skip is None}
