"""Review finding (issue 27): a sender that does not spin while one target backs off, nor for
messages spooled for a target no longer configured."""

from __future__ import annotations

from pathlib import Path

from hecate.adapters.notify import child
from hecate.adapters.notify.sender import NotifySender
from hecate.adapters.notify.spool import Spool
from hecate.config.notify import NotifyTarget
from hecate.core import notify_events as ne
from hecate.core.notify_events import Notice

WHERE = ne.Where("h", "ups@localhost")


def _target(name: str) -> NotifyTarget:
    return NotifyTarget.model_validate({"name": name, "url": f"json://127.0.0.1/{name}"})


def test_a_backing_off_target_does_not_make_the_thread_spin(tmp_path: Path) -> None:
    # "down" fails (backs off for minutes); "up" is healthy and has nothing pending: the thread
    # must sleep until down's retry, not poll the spool 20 times a second meanwhile.
    calls: list[str] = []

    def send(url: str, notices: list[Notice]) -> list[child.Result]:
        calls.append(url)
        ok = not url.endswith("/down")
        return [child.Result(ok, "" if ok else "refused") for _ in notices]

    sender = NotifySender(tmp_path, [_target("down"), _target("up")], send=send)
    sender.retry_max_s = 600.0
    sender._failures["down"] = 8  # the next failure waits the cap
    notice = ne.notice(WHERE, "test", "t", "n", 1_700_000_000.0)
    sender.spool.add(notice, ["down"])
    sender.deliver_due()
    assert calls == ["json://127.0.0.1/down"]
    assert sender._wait() > 60.0 - 1  # nothing due before down's retry (at most the idle wait)


def test_a_removed_target_with_spooled_messages_does_not_make_the_thread_spin(
    tmp_path: Path,
) -> None:
    sender = NotifySender(tmp_path, [_target("up")], send=lambda u, n: [])
    sender.spool.add(ne.notice(WHERE, "test", "t", "n", 1_700_000_000.0), ["gone"])
    assert sender._wait() >= 59.0


def test_a_full_spool_drops_the_oldest_non_critical_message_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_messages=3)
    shutdown = ne.notice(WHERE, "shutdown_triggered", "on battery", "shut down", 1.0)
    spool.add(shutdown, ["hook"])
    for i in range(4):
        spool.add(ne.notice(WHERE, "on_battery", f"m{i}", "n", 2.0 + i), ["hook"])
    kept = [p.notice for p in spool.pending()]
    assert kept[0] == shutdown  # still first: order kept
    assert [n.body for n in kept[1:]] == [
        ne.notice(WHERE, "on_battery", f"m{i}", "n", 0).body for i in (2, 3)
    ]
