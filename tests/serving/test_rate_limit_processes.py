"""The rate limit is atomic across web processes: a burst of 50 concurrent calls on a limit of 10 admits 10."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import two_web_processes  # noqa: F401 - kept importable from here
from tests.serving.test_serving_data import mint, service  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]


def test_burst_across_two_processes_admits_exactly_the_limit(client, admin, service, two_web_processes):  # noqa: F811
    key = mint(client, admin, service, rate_limit=10)["key"]
    urls = [f"http://127.0.0.1:{port}/api/service/sales-serving/top" for port in two_web_processes]

    def hit(i: int) -> int:
        return httpx.get(urls[i % 2], headers={"X-API-Key": key}, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(hit, range(50)))
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 40
