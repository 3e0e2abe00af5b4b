"""The three hosting paths: the ZeroGPU Gradio Space (assembled, started, asked through gradio_client, with
`spaces.GPU` wrapping the networks), the Docker Space (front matter the Hub accepts; the Dockerfile replayed
without Docker), and the static Space's front matter."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "web"))

from docker_dry_run import free_port, front_matter  # noqa: E402

# a stand-in for Hugging Face's `spaces` package: its GPU decorator records each call it wraps
FAKE_SPACES = """
import functools, os
def GPU(duration=60):
    def wrap(fn):
        @functools.wraps(fn)
        def run(*a, **k):
            with open(os.environ["FAKE_SPACES_LOG"], "a") as f:
                f.write(f"{fn.__name__} {duration}\\n")
            return fn(*a, **k)
        return run
    return wrap
"""


def test_front_matter_is_what_the_hub_accepts(tmp_path):
    import build_gradio_space

    readme = front_matter((ROOT / "README.md").read_text())
    assert readme["sdk"] == "docker" and readme["app_port"] == "7860"
    gradio_space = front_matter((build_gradio_space.build(tmp_path / "g") / "README.md").read_text())
    assert gradio_space["sdk"] == "gradio" and gradio_space["app_file"] == "app.py"
    assert gradio_space["python_version"] == "3.10.13"
    static = front_matter(__import__("build").README)
    assert static["sdk"] == "static"
    for meta in (readme, gradio_space, static):
        assert len(meta["short_description"]) <= 60, meta["short_description"]
    pins = (tmp_path / "g" / "requirements.txt").read_text()
    assert "torch==2.8.0" in pins and "spaces" in pins  # a PyTorch release ZeroGPU lists


def test_gradio_space_starts_and_analyses_the_example(tmp_path):
    pytest.importorskip("gradio")
    client_mod = pytest.importorskip("gradio_client")
    import build_gradio_space

    space = build_gradio_space.build(tmp_path / "space")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "spaces.py").write_text(FAKE_SPACES)
    log = tmp_path / "gpu.log"
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "PYTHONPATH": str(fake),
        "FAKE_SPACES_LOG": str(log),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=space, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()[-3000:]
                time.sleep(1)
        client = client_mod.Client(url, verbose=False)
        out = client.predict(
            client_mod.handle_file(str(space / "webapp" / "examples" / "astronaut.jpg")),
            ["fer2013"],
            ["occlusion-flip"],
            8,
            2,
            False,
            1,
            False,
            api_name="/handle",
        )
        boxes, panel, label, table, figures, message = out
        assert "1 face(s)" in message, message
        assert label["label"] == "happy"
        figures = json.load(open(figures)) if isinstance(figures, str) else figures
        assert figures["faces"][0]["models"]["fer2013"]["top"] == "happy"
        # the networks ran inside the GPU-holding function, and the app came from the Space folder
        assert log.read_text().split() == ["run_networks", "60"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_dockerfile_replays_as_uid_1000_and_the_app_answers():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "docker_dry_run.py"), "--timeout", "240"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0, report["failures"]
    assert report["cmd"]["answered"]
    assert any(s.startswith("RUN make install") for s in report["steps"])
