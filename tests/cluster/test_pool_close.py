"""Ending the local pool while a worker sends a large result must not hang.

A worker ended in the middle of sending a shard's result left half a message in the
pool's result pipe; the pool's manager thread then waited for the rest forever
(this process holds the pipe's other end), and with it ``LocalExecutor.close``
and the interpreter's exit. A signal mid-run hung ``hearth run`` this way in the
signal tests. Here two workers each return 300 MB and the pool is closed at moments
spread over the sending, each in its own process with a time limit."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import operator, sys, time
from hearth.cluster.local import LocalExecutor
if __name__ == "__main__":
    ex = LocalExecutor(workers=2)
    pool = ex._start()
    futures = [pool.submit(operator.mul, b"x", 300_000_000) for _ in range(2)]
    time.sleep(float(sys.argv[1]))
    ex.close()
    print("closed", flush=True)
"""


@pytest.mark.parametrize("delay", [0.8, 1.2, 1.6, 2.0, 2.4])
def test_closing_the_pool_while_a_result_is_sent_returns(tmp_path, delay):
    script = tmp_path / "close_mid_send.py"
    script.write_text(SCRIPT)
    try:
        p = subprocess.run([sys.executable, str(script), str(delay)], capture_output=True,
                           text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"closing the pool {delay}s into sending large results hung")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "closed" in p.stdout
