"""scripts/ray_cluster_check.py: a two-node Ray cluster on loopback, node loss mid-batch, clean-up (slow).

The script runs in a private network namespace (``unshare``); where none can be made, these skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ray_cluster_check.py"


@pytest.fixture(scope="module", autouse=True)
def network_namespace():
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]
    if shutil.which("unshare") is None or subprocess.run([*unshare, "true"], capture_output=True).returncode:
        pytest.skip("no private network namespace here (unshare); the check runs Ray on loopback only")


def processes_naming(text: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(text in part for part in proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def test_candidates_land_on_the_second_node_and_survive_its_loss():
    start = time.perf_counter()
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=330)
    wall = time.perf_counter() - start
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "nodes=2 actors_on_worker=2 batch_ok=1 node_loss_handled=1", run.stdout + run.stderr
    assert run.returncode == 0 and wall < 300
    assert "Ray processes left after the run: 0" in run.stdout
    assert any("error result: TimeoutError: worker-small: actor not up 20s" in line for line in lines)
    tmp = lines[0].removeprefix("temp dir: ")
    assert not Path(tmp).exists() and processes_naming(tmp) == []


def test_a_crashed_run_leaves_no_ray_process():
    """The check itself dies (SIGKILL) with both nodes and the actors up: the outer sweep ends them."""
    proc = subprocess.Popen([sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("batch 1:"):
            inner = [p for p in psutil.process_iter(["cmdline"]) if "--inside" in (p.info["cmdline"] or [])]
            (inner,) = [p for p in inner if p.ppid() == proc.pid or proc.pid in [a.pid for a in p.parents()]]
            inner.kill()
    assert proc.wait(timeout=120) == 1
    tmp = lines[0].removeprefix("temp dir: ")
    killed = next(line for line in lines if line.startswith("wall time"))
    assert int(killed.split("left after the run: ")[1].split()[0]) > 5  # head, second node, actors
    assert lines[-1] == "nodes=0 actors_on_worker=0 batch_ok=0 node_loss_handled=0"
    assert not Path(tmp).exists() and processes_naming(tmp) == []
