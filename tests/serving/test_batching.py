"""Group scoring: concurrent requests for one model share worker calls and each gets its own rows back."""

import threading
import time

import pytest

from app.errors import APIError
from app.serving.batching import GroupScorer


def test_concurrent_requests_are_grouped_and_sliced_correctly():
    scorer = GroupScorer()
    calls = []

    def send(rows, seconds):
        calls.append(len(rows))
        time.sleep(0.05)
        return {"predictions": [r["x"] * 10 for r in rows], "probabilities": [{"a": r["x"]} for r in rows]}

    results = {}

    def request(i):
        results[i] = scorer.score(("m", "sha"), [{"x": i}, {"x": i + 100}], send, 5)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(20):
        assert results[i]["predictions"] == [i * 10, (i + 100) * 10]
        assert results[i]["probabilities"] == [{"a": i}, {"a": i + 100}]
    assert sum(calls) == 40 and len(calls) < 20  # fewer worker calls than requests


def test_an_error_reaches_every_request_of_its_batch_and_the_next_call_works():
    scorer = GroupScorer()
    fail = threading.Event()
    fail.set()

    def send(rows, seconds):
        time.sleep(0.02)
        if fail.is_set():
            raise APIError(504, "timeout", "no answer")
        return {"predictions": [0] * len(rows), "probabilities": None}

    errors = []

    def request():
        try:
            scorer.score(("m",), [{"x": 1}], send, 5)
        except APIError as err:
            errors.append(err.status)

    threads = [threading.Thread(target=request) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [504] * 5
    fail.clear()
    assert scorer.score(("m",), [{"x": 1}], send, 5) == {"predictions": [0], "probabilities": None}


def test_max_rows_splits_batches():
    scorer = GroupScorer(max_rows=3)
    sizes = []
    gate = threading.Event()

    def send(rows, seconds):
        gate.wait(1)
        sizes.append(len(rows))
        return {"predictions": [0] * len(rows), "probabilities": None}

    threads = [threading.Thread(target=scorer.score, args=(("m",), [{"x": 1}, {"x": 2}], send, 5)) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join()
    assert max(sizes) <= 3 and sum(sizes) == 8


@pytest.mark.parametrize("wait", [0.05])
def test_a_waiter_gives_up_after_its_deadline(wait):
    scorer = GroupScorer()
    release = threading.Event()

    def slow(rows, seconds):
        release.wait(2)
        return {"predictions": [0] * len(rows), "probabilities": None}

    leader = threading.Thread(target=scorer.score, args=(("m",), [{"x": 1}], slow, 5))
    leader.start()
    time.sleep(0.02)
    with pytest.raises(APIError) as err:
        scorer.score(("m",), [{"x": 2}], slow, wait)
    assert err.value.status == 504
    release.set()
    leader.join()
    assert scorer.score(("m",), [{"x": 3}], lambda rows, seconds: {"predictions": [1], "probabilities": None}, 1)[
        "predictions"
    ] == [1]


def test_a_request_queued_behind_a_batch_is_answered_within_its_own_deadline():
    """Waiting behind the call in flight counts: the queued request is sent with what is left of its time, and
    answered 504 at its deadline, not after a fresh one."""
    scorer = GroupScorer()
    in_flight = threading.Event()
    given: list[float] = []

    def send(rows, seconds):  # a worker that takes 1 s, honouring the time it is given as call_worker does
        given.append(seconds)
        in_flight.set()
        if seconds < 1.0:
            time.sleep(seconds)
            raise APIError(504, "timeout", f"no answer within {seconds:g} s")
        time.sleep(1.0)
        return {"predictions": [0] * len(rows), "probabilities": None}

    first = threading.Thread(target=scorer.score, args=(("m",), [{"x": 1}], send, 5))
    first.start()
    in_flight.wait(5)
    started = time.monotonic()
    with pytest.raises(APIError) as err:
        scorer.score(("m",), [{"x": 2}], send, 1.5)  # 1 s behind the first call, then 0.5 s left for its own
    waited = time.monotonic() - started
    first.join()
    assert err.value.status == 504 and err.value.code == "timeout"
    assert err.value.message == "no answer within 1.5 s"  # the caller's deadline, not the part the batch had
    assert 1.3 < waited < 1.8, waited
    assert 4.9 < given[0] <= 5 and 0.3 < given[1] < 0.6, given


def test_a_request_promoted_as_its_time_runs_out_hands_the_lead_on():
    """A queued request whose deadline passed as it was promoted is a 504 and never sent; the one behind it
    leads the next batch."""
    scorer = GroupScorer()
    release, in_flight = threading.Event(), threading.Event()
    sent: list[int] = []

    def send(rows, seconds):
        sent.append(len(rows))
        in_flight.set()
        release.wait(5)
        return {"predictions": [r["x"] for r in rows], "probabilities": None}

    first = threading.Thread(target=scorer.score, args=(("m",), [{"x": 1}], send, 5))
    first.start()
    in_flight.wait(5)
    # Queued behind the first, with no time at all: it lapses in line (or at its promotion), never sent.
    with pytest.raises(APIError) as err:
        scorer.score(("m",), [{"x": 2}], send, 0)
    assert err.value.status == 504
    later: dict = {}
    third = threading.Thread(target=lambda: later.update(scorer.score(("m",), [{"x": 3}], send, 5)))
    third.start()
    time.sleep(0.05)
    release.set()
    first.join()
    third.join(5)
    assert later == {"predictions": [3], "probabilities": None}
    assert sent == [1, 1]


def test_when_a_batch_runs_out_of_its_leaders_time_the_others_are_sent_again_with_theirs():
    """A batch is sent with its leader's time (the oldest request's): when that runs out, the leader is the 504, and
    a later request of the batch, with time left, is sent again instead of sharing the leader's 504."""
    scorer = GroupScorer()
    in_flight = threading.Event()
    given: list[tuple[int, float]] = []

    def send(rows, seconds):  # scoring takes 0.3 s; given less, it is a 504 once that time is spent, as call_worker
        given.append((len(rows), round(seconds, 2)))
        in_flight.set()
        if seconds < 0.3:
            time.sleep(seconds)
            raise APIError(504, "timeout", f"no answer within {seconds:g} s")
        time.sleep(0.3)
        return {"predictions": [r["x"] for r in rows], "probabilities": None}

    answers: dict[str, object] = {}

    def call(name: str, x: int, timeout_s: float) -> None:
        started = time.monotonic()
        try:
            answers[name] = (scorer.score(("m",), [{"x": x}], send, timeout_s)["predictions"], 0)
        except APIError as err:
            answers[name] = (err.status, err.message)
        answers[name] = (*answers[name], round(time.monotonic() - started, 1))

    first = threading.Thread(target=call, args=("first", 1, 5))
    first.start()
    in_flight.wait(5)
    time.sleep(0.05)
    # Two requests queue behind the first (0.3 s): "short" has 0.4 s in all, 0.1 s left when the first returns, too
    # little to be scored; "later" has 2 s.
    short = threading.Thread(target=call, args=("short", 2, 0.4))
    short.start()
    time.sleep(0.05)
    later = threading.Thread(target=call, args=("later", 3, 2))
    later.start()
    for thread in (first, short, later):
        thread.join(5)
    assert answers["first"][0] == [1]
    assert answers["short"][:2] == (504, "no answer within 0.4 s"), answers
    assert answers["later"][0] == [3], answers  # sent again, alone, with its own time
    assert [n for n, _ in given] == [1, 2, 1], given
