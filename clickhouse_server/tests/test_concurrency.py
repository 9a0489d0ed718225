"""A long query blocks neither /ping nor other clients; many clients at once get correct answers."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.integration


def test_long_query_does_not_block_ping_or_other_clients(server):
    done = {}

    def long_query():
        r = server.query("SELECT sleep(3)")
        done["long"] = (time.monotonic(), r.status_code)

    t = threading.Thread(target=long_query)
    t.start()
    time.sleep(0.3)
    latencies = []
    for _ in range(10):
        start = time.monotonic()
        assert requests.get(server.url + "ping", timeout=5).text == "Ok.\n"
        latencies.append(time.monotonic() - start)
        time.sleep(0.05)
    r = server.query("SELECT count() FROM numbers(1000000)")
    done["short"] = time.monotonic()
    assert r.text == "1000000\n"
    t.join()
    assert max(latencies) < 0.2, latencies
    assert done["long"][1] == 200
    assert done["short"] < done["long"][0]


def test_many_clients_at_once(server):
    def work(i):
        return server.query(f"SELECT sum(number) FROM numbers({i * 1000})", timeout=120).text

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(work, range(1, 201)))
    assert results == [f"{sum(range(i * 1000))}\n" for i in range(1, 201)]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_client_going_away_mid_stream_cancels_the_query(server, method):
    sql = "SELECT number FROM numbers(100000000000) FORMAT RowBinary"  # minutes of output if never cancelled
    for i in range(3):
        r = server.query(sql, method=method, stream=True, params={"query_id": f"gone-{method}-{i}"})
        next(r.iter_content(1 << 16))
        r.close()
    # the streams were stopped: their query ids are free again within a moment
    deadline = time.monotonic() + 10
    while True:
        r = server.query("SELECT 1", params={"query_id": f"gone-{method}-2"})
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.text == "1\n"
