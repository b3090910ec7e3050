"""Jobs on threads of their own: results in the jobs' order, the first failure raised."""

from __future__ import annotations

import pytest

pa = pytest.importorskip("pyarrow")  # the [tables] extra; the torch-xla venv lacks it

from declarative_train.data.table_threads import in_order  # noqa: E402


def test_jobs_run_in_order_and_the_first_failure_is_raised() -> None:
    pool = pa.default_memory_pool()
    assert in_order(list(range(50)), lambda job: job * job, 3, pool) == [job * job for job in range(50)]
    assert in_order([], lambda job: job, 2, pool) == []
    ran = []

    def fail_at_five(job: int) -> int:
        ran.append(job)
        if job == 5:
            raise ValueError("five")
        return job

    with pytest.raises(ValueError, match="five"):
        in_order(list(range(1000)), fail_at_five, 2, pool)
    assert len(ran) < 1000  # the threads took no new job after the failure
