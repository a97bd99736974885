"""The api-server under 20 concurrent REST clients: every request answered, and the api-server still
serves its health endpoint and the execution API (what running tasks call) afterwards.

With a database pool smaller than the api-server's thread pool plus its event loop, the threads hold every
connection while the loop waits for one to check a bearer token; requests then fail with "QueuePool limit
... reached" after pool_timeout (docs/architecture.md, "Sizing the api-server"). Speed is not asserted
here: `make bench-footprint` prints it.
"""

from __future__ import annotations

from demo import load

CLIENTS = 20
REQUESTS_EACH = 15


def test_twenty_concurrent_clients_all_answered(stack):
    stack.airflow.wait_dag()
    result = load.run(CLIENTS, requests=REQUESTS_EACH)
    print(f"{CLIENTS} clients x {REQUESTS_EACH} requests: {result.summary()}")
    assert len(result.latencies) + len(result.errors) == CLIENTS * REQUESTS_EACH
    assert result.errors == [], f"{len(result.errors)} failed requests, first: {result.errors[:3]}"
    assert load.health_ok(load.CHECK_TIMEOUT), "the health endpoint did not answer after the burst"
    assert load.execution_api_ok(), "the execution API did not answer after the burst"
