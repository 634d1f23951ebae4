"""A two-node Ray cluster on loopback: candidates placed by resources, a node lost mid-batch, recovery.

Runs itself in a private network namespace (``unshare --net``, ``--map-root-user`` when not root)
whose only interface is ``lo``, so every address Ray uses is 127.0.0.1. There it starts two
``ray start --block`` processes, each in its own process group: a head (1 CPU) and a second node
(1 CPU plus the custom resource ``candidate_host``, which only it has). The pool is built with
``pool.ray.address=127.0.0.1:6379``; its two fake candidates ask for ``candidate_host`` and so
land on the second node. Then, with Router-R1 episodes (scripted router turns, each turn of the
batch one ``pool.generate`` call through ``envs.multi_llm_qa.batched_step``):

1. one batch of episodes answers in full;
2. the second node is killed (SIGKILL to its process group) while a batch is in flight: the pool
   restarts the dead actors, which wait for a node with ``candidate_host``; every failed call comes
   back as an error result, counted by the pool, and no call outlives the configured bound;
3. the second node starts again: the waiting actors land on it and the next batch answers in full.

Every Ray process stops at the end, also on failure; a sweep then kills whatever is left in the
namespace or names the run's temp dir, and the run fails if it found any.

Launch:  .venv/bin/python scripts/ray_cluster_check.py        (about 1-2 minutes on 2 cores)
Last line: ``nodes=2 actors_on_worker=<n> batch_ok=<0|1> node_loss_handled=<0|1>``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HEAD = "127.0.0.1:6379"
TIMEOUT_S, START_TIMEOUT_S = 10.0, 20.0  # pool.timeout_s, pool.ray.start_timeout_s of the check
DETECT_S = 15.0  # GCS notices a dead node within health_check_period x threshold (below), plus margin
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
ROWS = [
    {"id": f"q{i}", "question": f"Capital of {c}?", "golden_answers": [a]}
    for i, (c, a) in enumerate(
        [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Peru", "Lima")] * 2
    )
]
MODELS = ("worker-small", "worker-large")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)  # the run inside the namespace
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens, also through a pipe
    if args.inside:
        return inside(args.inside)
    tmp = Path(tempfile.mkdtemp(prefix="rlrc-", dir="/tmp"))  # short: Ray's socket paths live under it
    print(f"temp dir: {tmp}")
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]
    start, code = time.perf_counter(), 1
    try:
        code = subprocess.run(
            [*unshare, sys.executable, __file__, "--inside", str(tmp)], timeout=280
        ).returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"check did not finish: {exc}")
    finally:
        left = sweep(tmp)
        summary = tmp / "summary"
        line = (
            summary.read_text().strip()
            if summary.exists()
            else "nodes=0 actors_on_worker=0 batch_ok=0 node_loss_handled=0"
        )
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wall time {time.perf_counter() - start:.0f}s; Ray processes left after the run: {left} (killed)")
    print(line)
    return 0 if code == 0 and left == 0 and line.endswith("batch_ok=1 node_loss_handled=1") else 1


def sweep(tmp: Path) -> int:
    """Kill every process in the run's namespace or naming its temp dir; how many there were."""
    netns = (tmp / "netns").read_text() if (tmp / "netns").exists() else None
    ours = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, OSError):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.pid != os.getpid() and (
                str(tmp) in cmdline or os.readlink(f"/proc/{proc.pid}/ns/net") == netns
            ):
                print(f"left running: pid {proc.pid} {cmdline[:120]}")
                ours.append(proc)
    for proc in ours:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(ours, timeout=10)
    return len(ours)


def loopback_up() -> None:
    """``ip link set lo up`` without iproute2: a new network namespace starts with ``lo`` down."""
    import fcntl
    import socket
    import struct

    get_flags, set_flags, up = 0x8913, 0x8914, 0x1  # SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP
    with socket.socket() as s:
        flags = struct.unpack("16sh", fcntl.ioctl(s, get_flags, struct.pack("16sh", b"lo", 0)))[1]
        fcntl.ioctl(s, set_flags, struct.pack("16sh", b"lo", flags | up))


class Node:
    """One ``ray start --block`` process group; ``ports`` shifts every port it listens on."""

    def __init__(self, tmp: Path, name: str, ports: int, *, head: bool) -> None:
        self.log = tmp / f"{name}.out"
        common = [
            "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=100000000",
            "--disable-usage-stats", f"--temp-dir={tmp}",
            f"--node-manager-port={ports}", f"--object-manager-port={ports + 1}",
            f"--metrics-export-port={ports + 2}", f"--dashboard-agent-listen-port={ports + 3}",
            f"--dashboard-agent-grpc-port={ports + 4}", f"--runtime-env-agent-port={ports + 5}",
            f"--min-worker-port={ports + 10}", f"--max-worker-port={ports + 99}",
        ]  # fmt: skip
        if head:
            role = ["--head", "--port=6379", "--include-dashboard=false"]
            role += [f"--ray-client-server-port={ports + 6}"]
        else:
            role = [f"--address={HEAD}", "--resources=" + json.dumps({"candidate_host": 2})]
        ray_cli = str(Path(sys.executable).with_name("ray"))
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [ray_cli, "start", *role, *common],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_started(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while "Ray runtime started" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed; see its output:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.5)

    def group(self) -> list[psutil.Process]:
        """The node's processes: its ``ray start``'s process group and descendants (the raylet's
        workers, the actors among them, run in sessions of their own)."""
        procs = {p.pid: p for p in psutil.process_iter() if _pgid(p) == self.proc.pid}
        with contextlib.suppress(psutil.Error):
            procs |= {p.pid: p for p in psutil.Process(self.proc.pid).children(recursive=True)}
        return list(procs.values())

    def kill(self, sig: int = signal.SIGKILL, grace_s: float = 10.0, group: list | None = None) -> None:
        """Signal the node's processes (``group``: listed beforehand); SIGKILL what outlives ``grace_s``."""
        group = self.group() if group is None else group
        for p in group:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        for p in psutil.wait_procs(group, timeout=grace_s)[1]:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self.proc.wait()


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except OSError:
        return None


def play_batch(pool, normalizer) -> tuple[int, int, list[str], list[float]]:
    """One batch of episodes: two routes each (one per candidate, both in every turn), then the answer.

    Returns:
        (episodes correct, well-formed and without a failed call; failed calls; their messages;
        seconds of each turn's ``pool.generate``).
    """
    from envs.multi_llm_qa import MultiLLMQAEnv, batched_step

    envs = [MultiLLMQAEnv(pool, ROWS, mode="multi_round", outcome="em", normalizer=normalizer) for _ in ROWS]
    for i, env in enumerate(envs):
        env.reset(seed=i, options={"index": i})
    ask = "<think>ask</think><search>{}: {}</search>"
    turns = [[ask.format(MODELS[(i + t) % 2], r["question"]) for i, r in enumerate(ROWS)] for t in range(2)]
    turns.append([f"<think>done</think><answer>{r['golden_answers'][0]}</answer>" for r in ROWS])
    clean, failed, messages, seconds = 0, 0, [], []
    for texts in turns:
        start = time.perf_counter()
        steps = batched_step(envs, texts)
        seconds.append(time.perf_counter() - start)
        for _, _, terminated, _, info in steps:
            failed += info["candidate_error"]
            messages += [info["error"]] if info["candidate_error"] else []
            if terminated:
                ep = info["episode"]
                clean += ep["correct"] == 1.0 and ep["format_ok"] and ep["candidate_errors"] == 0
    return clean, failed, messages, seconds


def worker_node_id(ray) -> str:
    return next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "candidate_host" in n["Resources"])


def inside(tmp: Path) -> int:
    """The check itself, in the private namespace; writes its summary line to ``tmp/summary``."""
    loopback_up()
    (tmp / "netns").write_text(os.readlink("/proc/self/ns/net"))
    token = tmp / "auth_token"  # token auth, with a token of this run only (never ~/.ray's)
    token.write_text(secrets.token_hex(32))
    os.environ.update(RAY_ENV, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    import socket

    import ray

    from rewards.cost import PercentileCostNormalizer
    from rl_router.pool import ModelConfig, PoolConfig, RayConfig, build_pool

    nodes, on_worker, batch_ok, handled = 0, 0, 0, 0
    head, worker, pool = Node(tmp, "head", 6400, head=True), None, None
    try:
        head.wait_started()
        worker = Node(tmp, "worker", 6500, head=False)
        worker.wait_started()
        # Each candidate call takes a second, so the node can be killed while calls are in flight.
        fake, pinned = {"latency_s": 1.0}, {"candidate_host": 1}
        models = [
            ModelConfig(name=m, backend="fake", ray_actor=True, num_cpus=0.5, resources=pinned, fake=fake)
            for m in MODELS
        ]
        ray_cfg = RayConfig(address=HEAD, start_timeout_s=START_TIMEOUT_S)
        cfg = PoolConfig(models=models, cache=False, timeout_s=TIMEOUT_S, retries=1, ray=ray_cfg)
        pool = build_pool(cfg, log_file=tmp / "workers.log")  # engine chatter to the file, as in runs
        alive = [n for n in ray.nodes() if n["Alive"]]
        nodes, addresses = len(alive), sorted({n["NodeManagerAddress"] for n in alive})
        print(f"nodes: {nodes} at {addresses}; network interfaces: {[n for _, n in socket.if_nameindex()]}")
        if addresses != ["127.0.0.1"]:
            raise RuntimeError(f"Ray nodes at {addresses}, not on loopback only: stopping")
        node_of = {m: pool.backends[m].actor_info()["node_id"] for m in MODELS}
        on_worker = sum(node == worker_node_id(ray) for node in node_of.values())
        normalizer = PercentileCostNormalizer()
        clean, failed, _, _ = play_batch(pool, normalizer)
        batch_ok = int(clean == len(ROWS) and failed == 0 and on_worker == len(MODELS))
        print(f"batch 1: {clean}/{len(ROWS)} episodes clean, {failed} failed calls; on node 2: {on_worker}")

        errors_before = sum(s["errors"] for s in pool.stats().values())
        group = worker.group()
        threading.Timer(0.3, worker.kill, kwargs={"group": group}).start()  # during the first turn
        hit, after = play_batch(pool, normalizer), play_batch(pool, normalizer)
        counted = sum(s["errors"] for s in pool.stats().values()) - errors_before
        failed = hit[1] + after[1]
        left = [p.pid for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        print(
            f"node killed ({len(group)} processes, {len(left)} left): {failed} failed calls in the episodes, "
            f"{counted} counted by the pool; turns took {_secs(hit[3])} then {_secs(after[3])}"
        )
        for message in sorted({m.split(" (")[0] for m in hit[2] + after[2]}):
            print(f"  error result: {message}")
        # The batch it hit waits for the dead node to be noticed plus start_timeout_s; the next fails fast.
        bounded = max(hit[3]) <= DETECT_S + START_TIMEOUT_S and max(after[3]) <= 2.0
        all_failed = hit[0] == after[0] == 0 and after[1] == 2 * len(ROWS)

        worker = Node(tmp, "worker2", 6600, head=False)
        worker.wait_started()
        deadline, back = time.monotonic() + 60, (0, 0, [], [])
        while time.monotonic() < deadline and back[0] != len(ROWS):
            time.sleep(1.0)
            back = play_batch(pool, normalizer)
        node_of = (
            {m: pool.backends[m].actor_info()["node_id"] for m in MODELS} if back[0] == len(ROWS) else {}
        )
        back_on = sum(node == worker_node_id(ray) for node in node_of.values())
        restarts = [pool.backends[m].restarts for m in MODELS]
        print(f"node back: {back[0]}/{len(ROWS)} clean; on the new node: {back_on}, restarts {restarts}")
        recovered = back[0] == len(ROWS) and back[1] == 0 and back_on == len(MODELS)
        handled = int(failed == counted and all_failed and bounded and not left and recovered)
    except Exception as exc:  # the summary line still comes out, with what was shown so far
        print(f"check stopped: {type(exc).__name__}: {exc}")
    finally:
        if pool is not None:
            pool.close()
        ray.shutdown()
        for node in (worker, head):
            if node is not None:
                node.kill(signal.SIGTERM, grace_s=5.0)  # Ray drains for up to 30 s; no work is left
        line = f"nodes={nodes} actors_on_worker={on_worker} batch_ok={batch_ok} node_loss_handled={handled}"
        (tmp / "summary").write_text(line)
    return 0 if batch_ok and handled else 1


def _secs(seconds: list[float]) -> str:
    return "/".join(f"{s:.1f}" for s in seconds) + " s"


if __name__ == "__main__":
    sys.exit(main())
