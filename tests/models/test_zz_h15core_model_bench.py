import time

from tests.models.test_scoring import LEAVES, predict, served  # noqa: F401


def test_bench(client, served):  # noqa: F811
    import app.serving.workers as w

    phases = {"has_worker": 0.0, "apply_async": 0.0, "get": 0.0, "forget": 0.0}
    orig_has = w.queue_has_worker

    def has(q):
        t = time.perf_counter()
        try:
            return orig_has(q)
        finally:
            phases["has_worker"] += time.perf_counter() - t

    w.queue_has_worker = has
    from celery.result import AsyncResult
    from celery.app.task import Task

    og, of, oa = AsyncResult.get, AsyncResult.forget, Task.apply_async

    def timed(name, fn):
        def inner(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                phases[name] += time.perf_counter() - t
        return inner

    AsyncResult.get, AsyncResult.forget, Task.apply_async = timed("get", og), timed("forget", of), timed("apply_async", oa)
    try:
        for _ in range(20):
            assert predict(client, served.key, "churn", {"features": LEAVES}).status_code == 200
        for k in phases:
            phases[k] = 0.0
        n = 200
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            predict(client, served.key, "churn", {"features": LEAVES})
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        AsyncResult.get, AsyncResult.forget, Task.apply_async = og, of, oa
        w.queue_has_worker = orig_has
    print(f"\nBENCH model: {wall / n * 1000:.2f} ms wall, {cpu / n * 1000:.2f} ms web CPU per call; "
          + ", ".join(f"{k} {v / n * 1000:.2f} ms" for k, v in phases.items()))
