"""Does ``pip install "rl-router[gpu]"`` resolve? pip's resolver, dry runs only: nothing is installed.

Three checks, against PyPI alone (this machine's pip config, local wheel dirs and constraints are
set aside, as a GPU cluster would not have them):

1. every vLLM release in the ``gpu`` extra is one the ``gpu`` extra's TRL declares it supports
   (TRL's ``vllm`` extra, read from the index's metadata of that TRL);
2. each of those releases pins the torch that ``pyproject.toml`` pins (vLLM pins torch exactly);
   ``pip install --dry-run --no-deps --report`` reads each release's metadata without fetching
   its wheel (PyPI serves wheel metadata on its own, PEP 658);
3. the whole project with the ``gpu`` extra resolves: ``pip install --dry-run --ignore-installed
   ".[gpu]"``. Wheels are not downloaded; a few small sdists are, to read their metadata. About
   90 s.

Launch:  .venv/bin/python scripts/check_gpu_resolution.py
Last line: ``gpu_resolution=ok vllm=<v> torch=<v> trl=<v> transformers=<v>``, or
``gpu_resolution=failed:<what>`` (exit 1), or ``gpu_resolution=unreachable:<what>`` when the index
cannot be reached (exit 2: nothing was checked).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


class Unreachable(RuntimeError):
    """The package index did not answer."""


def pip(*args: str) -> subprocess.CompletedProcess:
    """Run pip on PyPI alone: no config files, no find-links, no constraint files of this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env)
    offline = re.compile(r"(?i)connect|resolve host|timed out|network is unreachable")
    if run.returncode and (lines := [line for line in run.stderr.splitlines() if offline.search(line)]):
        raise Unreachable(lines[-1].strip()[:200])
    return run


def metadata(spec: str, *extra: str) -> list[dict]:
    """pip's install report for ``spec`` (dry run; ``--no-deps`` unless ``extra`` says otherwise)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), *extra]
        run = pip(*args, spec)
        if run.returncode:
            raise RuntimeError(f"pip could not resolve {spec}: {run.stderr.strip()[-1500:]}")
        return [item["metadata"] for item in json.loads(report.read_text())["install"]]


def requirement(requirements: list[str], name: str, extra: str | None = None) -> Requirement:
    """The requirement on ``name`` in ``requirements`` (``extra``: the one under that extra only)."""
    for text in requirements:
        req = Requirement(text)
        in_extra = req.marker is not None and req.marker.evaluate({"extra": extra or ""})
        if req.name == name and (in_extra if extra else req.marker is None):
            return req
    raise LookupError(f"no requirement on {name}" + (f" in extra {extra!r}" if extra else ""))


def main() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    gpu = project["optional-dependencies"]["gpu"]
    vllm_req, trl_req = requirement(gpu, "vllm"), requirement(gpu, "trl")
    torch_pin = requirement(project["dependencies"], "torch").specifier
    print(f"pyproject: torch{torch_pin}; gpu extra: {vllm_req}, {trl_req}")

    index = pip("index", "versions", "vllm")
    if index.returncode:
        raise RuntimeError(f"pip index versions vllm: {index.stderr.strip()[-300:]}")
    listed = re.search(r"Available versions: (.*)", index.stdout).group(1).split(", ")
    releases = sorted((v for v in listed if vllm_req.specifier.contains(v)), key=Version)
    if not releases:
        return f"failed:no vllm release on the index matches {vllm_req}"
    (trl,) = metadata(f"trl{trl_req.specifier}", "--no-deps")
    trl_vllm = requirement(trl.get("requires_dist", []), "vllm", extra="vllm").specifier
    print(f"vllm releases in the gpu extra: {releases}; trl {trl['version']} supports vllm{trl_vllm}")
    unsupported = [v for v in releases if not trl_vllm.contains(v)]
    if unsupported:
        return f"failed:trl {trl['version']} does not support vllm {unsupported}"
    for version in releases:
        (meta,) = metadata(f"vllm=={version}", "--no-deps")
        torch = requirement(meta.get("requires_dist", []), "torch").specifier
        print(f"  vllm {version}: needs torch{torch}")
        if str(torch) != str(torch_pin):
            return f"failed:vllm {version} needs torch{torch}, pyproject pins torch{torch_pin}"

    resolved = {m["name"].lower(): m["version"] for m in metadata(f"rl-router[gpu] @ {REPO.as_uri()}")}
    names = ("vllm", "torch", "trl", "transformers")
    print(f"full resolution: {len(resolved)} packages; ray {resolved.get('ray')}")
    return "ok " + " ".join(f"{n}={resolved[n]}" for n in names)


if __name__ == "__main__":
    try:
        outcome = main()
    except Unreachable as exc:
        print(f"gpu_resolution=unreachable:{exc}")
        sys.exit(2)
    except (RuntimeError, LookupError) as exc:
        outcome = f"failed:{' '.join(str(exc).split())[:300]}"
    print(f"gpu_resolution={outcome}")
    sys.exit(0 if outcome.startswith("ok") else 1)
