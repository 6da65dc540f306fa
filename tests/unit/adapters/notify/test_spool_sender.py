"""The notification spool and sender (issue 27 item 4): files that survive a restart, sent in
order once, a failing target that keeps its messages in order and retries, a bounded spool, a
submit that never blocks; and the Apprise child against a real HTTP receiver."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from hecate.adapters.notify import child
from hecate.adapters.notify.sender import QUEUE_SIZE, NotifySender
from hecate.adapters.notify.spool import Spool
from hecate.config.notify import NotifyTarget
from hecate.core import notify_events as ne
from hecate.core.notify_events import Notice
from tests.testbed.receivers import HttpReceiver

WHERE = ne.Where("h", "ups@localhost")


def _notice(i: int, event: str = "on_battery") -> Notice:
    return ne.notice(WHERE, event, f"message {i}", "next", 1_700_000_000.0 + i)


class Recorder:
    """A send port that fails while `down` and records what it took."""

    def __init__(self) -> None:
        self.down = False
        self.got: list[tuple[str, str]] = []
        self.calls = 0

    def __call__(self, url: str, notices: list[Notice]) -> list[child.Result]:
        self.calls += 1
        if self.down:
            return [child.Result(False, "refused")]
        self.got += [(url, n.body) for n in notices]
        return [child.Result(True) for _ in notices]


def _target(name: str = "hook", **extra: object) -> NotifyTarget:
    return NotifyTarget.model_validate({"name": name, "url": f"json://127.0.0.1/{name}", **extra})


def test_the_spool_keeps_order_and_content_across_a_new_instance(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.add(_notice(i), ["a", "b"])
    again = Spool(tmp_path)  # a restarted daemon
    pending = again.pending()
    assert [(p.target, p.notice) for p in pending] == [
        (t, _notice(i)) for i in range(3) for t in ("a", "b")
    ]
    again.add(_notice(9), ["a"])  # numbered after what was there
    assert again.pending()[-1].notice == _notice(9)
    assert (tmp_path / "notify-spool").stat().st_mode & 0o077 == 0


def test_the_spool_is_bounded_and_drops_the_oldest(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_messages=3)
    dropped = [spool.add(_notice(i), ["a"]) for i in range(5)]
    assert dropped == [[], [], [], ["a"], ["a"]]
    assert [p.notice for p in spool.pending()] == [_notice(2), _notice(3), _notice(4)]


def test_a_corrupt_spool_file_is_set_aside_and_blocks_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add(_notice(0), ["a"])
    spool.add(_notice(1), ["a"])
    first = sorted((tmp_path / "notify-spool").glob("*.json"))[0]
    first.write_text("{not json")
    assert [p.notice for p in spool.pending()] == [_notice(1)]
    assert first.with_name(first.name + ".bad").exists()


def test_a_failing_target_keeps_its_messages_in_order_and_the_other_gets_its_own(
    tmp_path: Path,
) -> None:
    counts: list[tuple[str, str]] = []
    port = Recorder()
    port.down = True
    sender = NotifySender(
        tmp_path,
        [_target("hook"), _target("pager", min_severity="critical")],
        count=lambda t, r: counts.append((t, r)),
        send=port,
    )
    for i in range(3):
        sender._take(_notice(i))
    sender._take(_notice(3, "shutdown_triggered"))  # critical: for both
    sender.deliver_due()
    assert port.got == []
    assert ("hook", "failed") in counts
    assert sender.spool.depth() == 5  # 4 for hook, 1 for pager
    port.down = False
    sender._due.clear()  # the backoff has passed
    sender.deliver_due()
    hook = [body for url, body in port.got if url.endswith("/hook")]
    assert hook == [_notice(i, e).body for i, e in enumerate(["on_battery"] * 3)] + [
        _notice(3, "shutdown_triggered").body
    ]
    assert [b for u, b in port.got if u.endswith("/pager")] == [
        _notice(3, "shutdown_triggered").body
    ]
    assert sender.spool.depth() == 0
    sender.deliver_due()
    assert len(port.got) == 5  # nothing sent twice


def test_the_backoff_doubles_up_to_its_cap(tmp_path: Path) -> None:
    port = Recorder()
    port.down = True
    sender = NotifySender(tmp_path, [_target()], send=port, retry_max_s=5.0)
    sender._take(_notice(0))
    delays = []
    for _ in range(5):
        sender._due.clear()
        before = time.monotonic()
        sender.deliver_due()
        delays.append(round(sender._due["hook"] - before))
    assert delays == [2, 4, 5, 5, 5]


def test_submit_never_blocks_even_when_the_queue_is_full(tmp_path: Path) -> None:
    counts: list[str] = []
    sender = NotifySender(tmp_path, [_target()], count=lambda t, r: counts.append(r))
    started = time.monotonic()
    sender.submit([_notice(i) for i in range(QUEUE_SIZE + 5)])  # no thread takes them
    assert time.monotonic() - started < 1.0
    assert counts == ["dropped"] * 5


def test_the_thread_sends_what_a_previous_process_spooled(tmp_path: Path) -> None:
    Spool(tmp_path).add(_notice(0), ["hook"])
    port = Recorder()
    done = threading.Event()

    def send(url: str, notices: list[Notice]) -> list[child.Result]:
        result = port(url, notices)
        done.set()
        return result

    sender = NotifySender(tmp_path, [_target()], send=send)
    sender.start()
    try:
        assert done.wait(10)
    finally:
        sender.close()
    assert [b for _, b in port.got] == [_notice(0).body]


def test_the_child_delivers_to_a_real_receiver_and_reports_a_refusal(tmp_path: Path) -> None:
    receiver = HttpReceiver().start()
    try:
        results = child.send(f"json://127.0.0.1:{receiver.port}/x", [_notice(0), _notice(1)])
        assert results == [child.Result(True), child.Result(True)]
        bodies = [a.json()["message"] for a in receiver.wait_for(2)]
        assert bodies[0].startswith(_notice(0).body)
        assert bodies[0].endswith("(at 2023-11-14 22:13:20 UTC)")  # made, not sent
    finally:
        receiver.stop()
    refused = child.send(f"json://127.0.0.1:{receiver.port}/x", [_notice(0), _notice(1)])
    assert refused == [child.Result(False, refused[0].why)]
    assert "Connection error" in refused[0].why
    assert "apprise" not in sys.modules  # the caller never imports it


def test_a_child_that_hangs_is_killed_at_its_timeout() -> None:
    # a server that accepts and never answers: the child waits; the parent's timeout ends it
    import socket  # noqa: PLC0415

    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(8)
    try:
        port = sink.getsockname()[1]
        started = time.monotonic()
        results = child.send(f"json://127.0.0.1:{port}/x", [_notice(0)], timeout_s=3.0)
        assert time.monotonic() - started < 6.0
        assert results == [child.Result(False, "no answer within 3 s")]
    finally:
        sink.close()


def test_the_chores_run_on_the_sender_thread_at_most_once_a_minute(tmp_path: Path) -> None:
    sender = NotifySender(tmp_path, [_target()], send=Recorder())
    threads: list[str] = []
    sender.chores = lambda: threads.append(threading.current_thread().name)
    sender._run_chores()
    sender._run_chores()
    assert threads == [threading.current_thread().name]  # once: the next a minute later
    sender.start()
    sender._chores_at = 0.0
    sender.submit([_notice(0)])  # wakes the thread
    deadline = time.monotonic() + 10
    while len(threads) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sender.close()
    assert threads[1] == "hecate-notify"
