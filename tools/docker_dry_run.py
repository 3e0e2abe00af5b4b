"""Replay the Dockerfile without Docker: its COPY, ENV, WORKDIR and RUN steps in a fresh folder, as uid 1000
(the user Hugging Face Spaces run containers as) when this runs as root, then start its CMD and wait until the
app answers. Also checks what the Hub checks in README's front matter (short_description <= 60 characters,
app_port = the port the CMD serves).

    python tools/docker_dry_run.py [--keep DIR] [--timeout 180]

What it cannot replay: the base image itself (the Python here must have the image's major.minor version) and
apt-get (it checks that the commands the image installs exist here). PyTorch's CPU wheel index
(download.pytorch.org) is only used when it is reachable; otherwise the install takes PyPI's wheels and says so.
Exit code 0 when every step ran and the app answered.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UID = 1000
IMAGE_HOME = "/home/user"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            op, _, rest = buf.partition(" ")
            out.append((op.upper(), rest.strip()))
            buf = ""
    return out


def front_matter(text: str) -> dict[str, str]:
    """The YAML front matter of a Space's README as flat key: value pairs."""
    if not text.startswith("---"):
        return {}
    block = text.split("---", 2)[1]
    return {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in block.splitlines() if ":" in ln)}


def reachable(url: str, timeout: float = 3.0) -> bool:
    host = re.sub(r"^https?://", "", url).split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_user(cmd: list[str]) -> list[str]:
    """`cmd` run as uid 1000 when this process is root (Spaces' user); as this user otherwise."""
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *cmd]
    return cmd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dockerfile", type=Path, default=ROOT / "Dockerfile")
    ap.add_argument("--keep", type=Path, help="replay into this folder and keep it (default: a temporary one)")
    ap.add_argument("--timeout", type=float, default=180, help="seconds the app may take to answer")
    args = ap.parse_args()
    report: dict = {"steps": [], "notes": []}
    failures: list[str] = []

    meta = front_matter((ROOT / "README.md").read_text())
    if len(meta.get("short_description", "")) > 60:
        failures.append(f"README short_description is {len(meta['short_description'])} characters (the Hub allows 60)")

    base = args.keep or Path(tempfile.mkdtemp(prefix="docker-dry-run-"))
    home = base / "home" / "user"
    home.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and shutil.which("setpriv"):
        for p in (base / "home", home):
            os.chown(p, UID, UID)
        report["notes"].append(f"steps after USER run as uid {UID} (setpriv)")
    else:
        report["notes"].append("not root (or no setpriv): steps run as this user, not uid 1000")
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    cwd, user, port, cmd = home, "root", None, None

    def local(p: str) -> str:
        return p.replace(IMAGE_HOME, str(home))

    for op, arg in instructions(args.dockerfile):
        step = f"{op} {arg}"
        if op == "FROM":
            want = re.search(r"python:(\d+\.\d+)", arg)
            have = f"{sys.version_info.major}.{sys.version_info.minor}"
            if want and want.group(1) != have:
                failures.append(f"the image uses Python {want.group(1)}, this machine {have}")
        elif op == "RUN" and "apt-get" in arg:
            pkgs = (
                arg.split("--no-install-recommends", 1)[1].split("&&")[0].split()
                if "--no-install-recommends" in arg
                else []
            )
            missing = [p for p in pkgs if p in ("make",) and not shutil.which(p)]
            if missing:
                failures.append(f"apt packages not available here: {missing}")
            report["notes"].append(f"apt-get not replayed (needs root in the image); checked here: {pkgs}")
        elif op == "RUN" and arg.startswith("useradd"):
            report["notes"].append("useradd/chown not replayed: the replay runs as uid 1000 in a folder it owns")
        elif op == "USER":
            user = arg
        elif op == "ENV":
            for k, v in re.findall(r"(\w+)=(\S+)", arg):
                env[k] = local(v.replace("$PATH", env["PATH"]))
        elif op == "WORKDIR":
            cwd = Path(local(arg))
            cwd.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(cwd, UID, UID)
        elif op == "COPY":
            parts = [p for p in shlex.split(arg) if not p.startswith("--")]
            *sources, dest = parts
            target = cwd / dest if not dest.startswith("/") else Path(local(dest))
            for s in sources:
                src = ROOT / s
                to = target / src.name if (dest.endswith("/") or len(sources) > 1) else target
                if src.is_dir():
                    shutil.copytree(src, to, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    to.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, to)
            if os.geteuid() == 0:
                subprocess.run(["chown", "-R", f"{UID}:{UID}", str(base)], check=True)
        elif op == "RUN":
            command = arg
            index = re.search(r"--extra-index-url (\S+?)\"?(\s|$)", command)
            if index and not reachable(index.group(1)):
                command = command.replace(f"--extra-index-url {index.group(1)}", "")
                report["notes"].append(f"{index.group(1)} is not reachable from here: installed from PyPI instead")
            t0 = time.perf_counter()
            done = subprocess.run(
                as_user(["bash", "-c", command]) if user != "root" else ["bash", "-c", command],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
            )
            step += f" ({time.perf_counter() - t0:.0f} s)"
            if done.returncode:
                failures.append(f"RUN {arg} failed ({done.returncode}): {done.stderr[-1500:]}")
                report["steps"].append(step)
                break
        elif op == "EXPOSE":
            port = int(arg.split("/")[0])
        elif op == "CMD":
            cmd = json.loads(arg)
        report["steps"].append(step)

    if meta.get("app_port") and port and int(meta["app_port"]) != port:
        failures.append(f"README app_port {meta['app_port']} is not the EXPOSEd port {port}")
    if cmd and not failures:
        serve = free_port()  # the CMD's port, moved to a free one here
        cmd = [c.replace(str(port), str(serve)) if port else c for c in cmd]
        proc = subprocess.Popen(
            as_user(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        t0, answered = time.perf_counter(), False
        try:
            while time.perf_counter() - t0 < args.timeout and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{serve}/_stcore/health", timeout=2) as r:
                        healthy = r.status == 200
                except OSError:
                    time.sleep(1)
                    continue
                if healthy:  # then the page itself must load
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{serve}/", timeout=5) as r:
                            answered = r.status == 200 and b"<html" in r.read(2000).lower()
                    except OSError as e:
                        report["notes"].append(f"the page did not load: {e}")
                    break
        finally:
            proc.terminate()
            try:
                out = proc.communicate(timeout=20)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                out = ""
        report["cmd"] = {"command": cmd, "answered": answered, "seconds": round(time.perf_counter() - t0, 1)}
        if not answered:
            failures.append(f"CMD did not answer within {args.timeout:.0f} s: {out[-1500:]}")
    report["failures"] = failures
    report["folder"] = str(base)
    print(json.dumps(report, indent=2))
    if not args.keep and not failures:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
