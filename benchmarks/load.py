"""The Streamlit app under load: N visitors upload photos at once. Prints JSON.

Starts the app on a free localhost port (nothing else is contacted), opens N sessions, and has each upload M
photos one after another (the public-domain astronaut,
each copy made unique by one pixel, so no upload is served from another's cache). Per upload: the seconds from
choosing the file to the finished result (faces found, every model's map, no progress bar). For the server: CPU
seconds per upload (from /proc, counted from the moment every session's page is open) and its peak resident
memory. Bounded: at most 8 sessions, 20 photos each, and
--timeout seconds in all.

A session is a headless Chromium page (Debian's `chromium`, driven by Playwright: the page drawn as people see it)
or, with --client protocol, a few lines that speak Streamlit's own protocol as the page's JavaScript does (its
websocket, the upload route, the rendered images fetched). Browsers on this machine take more CPU per upload than
the server; the protocol client takes ~0.05 s, so it measures the server with the cores to itself, as visitors
with their own computers would.

    python benchmarks/load.py --sessions 4 --photos 5 [--client protocol] [--models fer2013,ferplus]
    python benchmarks/load.py --app gradio --sessions 4 --photos 5 [--workers 2]   # gradio_client, no browser

With --app gradio, each session is a gradio_client calling the twin's Analyse handler with its default controls
(every map of the default models), one request after another; --workers sets DEEP_EMOTION_WORKERS, the twin's
concurrency limit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores (/proc/stat): the server, the browsers, everything."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photos(session: int, count: int, folder: Path) -> list[Path]:
    from PIL import Image
    from skimage import data

    base = Image.fromarray(data.astronaut())
    out = []
    for k in range(count):
        im = base.copy()
        im.putpixel((session, k), (session * 7 % 256, k * 13 % 256, 0))
        path = folder / f"s{session}-p{k}.jpg"
        im.save(path, quality=92)
        out.append(path)
    return out


def session(url: str, files: list[Path], latencies: list[float], ready: threading.Barrier | None = None) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(url, timeout=300_000)
            page.get_by_text("astronaut.jpg: ").first.wait_for(timeout=300_000)
            page.get_by_text("Upload", exact=True).click(timeout=60_000)
            if ready is not None:
                ready.wait(timeout=300)  # every session's page is open: the uploads start together
            for path in files:
                t = time.perf_counter()
                page.locator("input[type=file]").set_input_files(str(path), timeout=60_000)
                # the last line of a finished page names the photo (stale lines name the previous one)
                page.get_by_text(f"{path.name}: face 1 of 1 explained").wait_for(timeout=300_000)
                latencies.append(time.perf_counter() - t)
        finally:
            browser.close()


def protocol_session(
    url: str, files: list[Path], latencies: list[float], ready: threading.Barrier | None = None
) -> None:
    """One visitor without a browser: Streamlit's own protocol, as the page's JavaScript speaks it (the websocket
    `/_stcore/stream`, the upload route, the rendered images fetched). It costs the machine little, so the server
    has the cores to itself; the page's own drawing in a browser is not measured."""
    import requests
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.Common_pb2 import UploadedFileInfo
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    from websockets.sync.client import connect

    base, _, query = url.partition("?")
    with contextlib.ExitStack() as closing:
        http = closing.enter_context(requests.Session())
        http.get(base + "_stcore/health", timeout=60).raise_for_status()
        xsrf = http.cookies.get("_streamlit_xsrf")  # set by the server; echoed in a header and the subprotocol
        ws = closing.enter_context(
            connect(
                base.replace("http", "ws", 1) + "_stcore/stream",
                max_size=None,
                open_timeout=60,
                subprotocols=["streamlit", xsrf] if xsrf else ["streamlit"],
                additional_headers={"Cookie": f"_streamlit_xsrf={xsrf}"} if xsrf else None,
            )
        )
        ids: dict[str, str] = {}  # widget label -> id
        state = {"session": "", "images": []}

        def run(widgets: list[WidgetState], needle: bytes | None = None, timeout: float = 300) -> None:
            """One rerun with these widget values; returns when the script finished (and showed `needle`)."""
            msg = BackMsg()
            msg.rerun_script.query_string = query
            msg.rerun_script.widget_states.widgets.extend(widgets)
            ws.send(msg.SerializeToString())
            seen = needle is None
            state["images"] = []
            end = time.monotonic() + timeout
            while True:
                raw = ws.recv(timeout=max(0.1, end - time.monotonic()))
                seen = seen or needle in raw
                fwd = ForwardMsg.FromString(raw)
                kind = fwd.WhichOneof("type")
                if kind == "new_session":
                    state["session"] = fwd.new_session.initialize.session_id or state["session"]
                elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                    el = fwd.delta.new_element
                    widget = el.WhichOneof("type")
                    if widget in ("radio", "file_uploader"):
                        ids[getattr(el, widget).label] = getattr(el, widget).id
                    elif widget == "imgs":
                        state["images"] += [img.url for img in el.imgs.imgs]
                    elif widget == "exception":
                        raise RuntimeError(f"the page raised: {el.exception.message[:150]}")
                elif kind == "script_finished" and fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    if not seen:
                        raise RuntimeError(f"the page finished without {needle!r}")
                    for image in state["images"]:  # as a browser would
                        http.get(base + image.lstrip("/"), timeout=60).raise_for_status()
                    return

        def source(value: str) -> WidgetState:
            return WidgetState(id=ids["Source"], string_value=value)

        run([])  # the page as first opened: the example photo
        run([source("Upload")])
        uploader = ids["A photo with one or more faces"]
        if ready is not None:
            ready.wait(timeout=300)  # every session's page is open: the uploads start together
        for k, path in enumerate(files):
            t = time.perf_counter()
            ask = BackMsg()
            ask.file_urls_request.request_id = str(k)
            ask.file_urls_request.session_id = state["session"]
            ask.file_urls_request.file_names.append(path.name)
            ws.send(ask.SerializeToString())
            while (fwd := ForwardMsg.FromString(ws.recv(timeout=60))).WhichOneof("type") != "file_urls_response":
                pass
            urls = fwd.file_urls_response.file_urls[0]
            body = path.read_bytes()
            http.put(
                base + urls.upload_url.lstrip("/"),
                files={"file": (path.name, body, "image/jpeg")},
                headers={"X-Xsrftoken": xsrf} if xsrf else {},
                timeout=60,
            ).raise_for_status()
            info = UploadedFileInfo(name=path.name, size=len(body), file_id=urls.file_id, file_urls=urls)
            upload = WidgetState(id=uploader)
            upload.file_uploader_state_value.uploaded_file_info.append(info)
            run([source("Upload"), upload], needle=f"{path.name}: face 1 of 1 explained".encode())
            latencies.append(time.perf_counter() - t)


def gradio_session(url: str, files: list[Path], latencies: list[float], ready: threading.Barrier | None = None) -> None:
    """One visitor of the Gradio twin: the Analyse button's handler with the page's defaults, per photo."""
    from gradio_client import Client, handle_file

    sys.path.insert(0, str(ROOT))
    from deep_emotion.models.card import default_models, read_cards
    from deep_emotion.results import DEFAULT_METHODS

    models = default_models(read_cards())  # the page's default choice, from the cards (no weights loaded here)
    client = Client(url, verbose=False, download_files=False)
    if ready is not None:
        ready.wait(timeout=300)
    for path in files:
        t = time.perf_counter()
        out = client.predict(
            handle_file(str(path)), models, list(DEFAULT_METHODS), 8, 2, False, 1, False, api_name="/handle"
        )
        if not str(out[-1]).startswith("1 face(s)"):
            raise RuntimeError(f"unexpected message: {str(out[-1])[:120]}")
        latencies.append(time.perf_counter() - t)


def guarded(
    visit,
    url: str,
    files: list[Path],
    latencies: list[float],
    errors: list[str],
    ready: threading.Barrier | None = None,
) -> None:
    """Run one visitor; a failure is reported in `errors`, not raised, and the others (and the clock) stop waiting
    for it at the barrier."""
    try:
        visit(url, files, latencies, ready)
    except Exception as e:  # noqa: BLE001
        errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        if ready is not None:
            ready.abort()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", default="streamlit", choices=["streamlit", "gradio"])
    ap.add_argument(
        "--client",
        default="browser",
        choices=["browser", "protocol"],
        help="the Streamlit app's visitors: headless Chromium (the page drawn, as people see it), or "
        "Streamlit's protocol spoken directly (no drawing: the server has this machine's cores)",
    )
    ap.add_argument("--workers", type=int, default=0, help="DEEP_EMOTION_WORKERS for the server (0: unset)")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="OMP_NUM_THREADS for the server: torch's threads per analysis (0: unset, torch's choice)",
    )
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--photos", type=int, default=5)
    ap.add_argument("--models", default="", help="comma-separated, in the URL (default: the app's defaults)")
    ap.add_argument(
        "--methods", default="", help="the Streamlit app's maps, in the URL (the first is shown; default: the app's)"
    )
    ap.add_argument("--malloc-arena-max", type=int, default=0, help="MALLOC_ARENA_MAX for the server (0: unset)")
    ap.add_argument(
        "--client-nice",
        type=int,
        default=None,
        help="niceness of the clients (this process, its browsers and drivers; the server keeps 0). "
        "Default: 19 for browsers (they share the server's cores here, where real visitors' "
        "browsers would not), 0 for the protocol client (at 19 its few instructions would wait "
        "behind the busy server, and the wait would count in the latencies)",
    )
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument(
        "--profile",
        type=Path,
        help="also sample the server with py-spy during the uploads: the threads "
        "holding Python's GIL, as raw stacks to this file (torch's own "
        "threads are not seen; py-spy pauses the server as it samples, "
        "so latencies include its overhead)",
    )
    args = ap.parse_args()
    if not 1 <= args.sessions <= 8 or not 1 <= args.photos <= 20:
        ap.error("--sessions 1..8, --photos 1..20")
    if args.client_nice is None:
        args.client_nice = 19 if args.app == "streamlit" and args.client == "browser" else 0
    if not 0 <= args.client_nice <= 19:
        ap.error("--client-nice 0..19")
    if args.app == "gradio" and (args.models or args.methods):
        ap.error("--models and --methods are the Streamlit app's URL; the Gradio twin runs its page's defaults")
    spy_path = Path(sys.executable).parent / "py-spy"
    if args.profile and not spy_path.exists():
        ap.error("--profile needs py-spy in this environment (pip install py-spy)")
    # gradio_client reports usage to Hugging Face unless told not to: nothing but localhost is contacted here
    os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_TELEMETRY="1")
    if args.app == "gradio" and args.client != "browser":
        ap.error("--client is the Streamlit app's; the Gradio twin is driven by gradio_client")
    if args.app == "streamlit" and args.client == "browser" and not Path(CHROMIUM).exists():
        sys.exit("chromium is not installed (make test installs Debian's package)")
    import tempfile

    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
    if args.workers:
        env["DEEP_EMOTION_WORKERS"] = str(args.workers)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    if args.app == "gradio":
        env["GRADIO_SERVER_PORT"] = str(port)
        command = [sys.executable, str(ROOT / "webapp" / "gradio_app.py")]
        health, visit = f"http://127.0.0.1:{port}/", gradio_session
    else:
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "webapp" / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ]
        health = f"http://127.0.0.1:{port}/_stcore/health"
        visit = session if args.client == "browser" else protocol_session
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if args.client_nice:
        os.nice(args.client_nice)  # after the server started: browsers and drivers inherit it, the server does not
    query = "&".join(f"{k}={v}" for k, v in (("models", args.models), ("methods", args.methods)) if v)
    url = f"http://127.0.0.1:{port}/" + (f"?{query}" if query and args.app == "streamlit" else "")
    latencies: list[float] = []
    errors: list[str] = []
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(health, timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        with tempfile.TemporaryDirectory() as tmp:
            # one warm-up session: models loaded, the example analysed (not counted)
            if args.app == "gradio":  # models loaded, one photo analysed (not counted)
                guarded(visit, url, photos(99, 1, Path(tmp)), [], errors)
            else:
                guarded(visit, url, [], [], errors)
            ready = threading.Barrier(args.sessions + 1)
            threads = [
                threading.Thread(
                    target=guarded, args=(visit, url, photos(s, args.photos, Path(tmp)), latencies, errors, ready)
                )
                for s in range(args.sessions)
            ]
            for t in threads:
                t.start()
            try:
                ready.wait(timeout=300)  # pages open (not counted); from here on, uploads only
            except threading.BrokenBarrierError:
                pass  # a session failed before its first upload: reported in "errors"; the others stop too
            cpu0, machine0 = cpu_seconds(server.pid), machine_cpu_seconds()
            spy = (
                subprocess.Popen(
                    [
                        str(spy_path),
                        "record",
                        "--pid",
                        str(server.pid),
                        "--format",
                        "raw",
                        "--output",
                        str(args.profile),
                        "--rate",
                        "100",
                        "--gil",
                    ],
                    stdout=subprocess.DEVNULL,
                )
                if args.profile
                else None
            )
            t0 = time.perf_counter()
            for t in threads:
                t.join(timeout=max(1.0, args.timeout - (time.perf_counter() - t0)))
            wall = time.perf_counter() - t0
            cpu, machine = cpu_seconds(server.pid) - cpu0, machine_cpu_seconds() - machine0
            if spy is not None:
                spy.send_signal(2)  # py-spy writes its file on SIGINT
                try:
                    spy.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    spy.kill()
                if spy.returncode != 0 or not args.profile.exists():
                    errors.append(f"py-spy wrote no profile (exit {spy.returncode}; it needs ptrace rights)")
        rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = sorted(latencies)
    pct = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None  # noqa: E731
    print(
        json.dumps(
            {
                "benchmark": "load",
                "app": args.app,
                "client": args.client if args.app == "streamlit" else "gradio_client",
                "workers": env.get("DEEP_EMOTION_WORKERS", "the app's default"),
                "threads": env.get("OMP_NUM_THREADS", "torch's choice"),
                "sessions": args.sessions,
                "photos_per_session": args.photos,
                "models": args.models or "the app's defaults",
                "methods": args.methods or "the app's defaults",
                "malloc_arena_max": args.malloc_arena_max or None,
                "uploads_done": len(lat),
                "errors": errors,
                "wall_s": round(wall, 1),
                "latency_s": {
                    "median": round(statistics.median(lat), 2) if lat else None,
                    "p90": pct(0.9),
                    "max": pct(1.0),
                },
                "server_cpu_s_per_upload": round(cpu / max(1, len(lat)), 3),
                # the clients (browsers) share this machine: what they take is missing from the server's cores
                "machine_cpu_s_per_upload": round(machine / max(1, len(lat)), 3),
                "target_server_cpu_s_per_upload": 0.5,
                "target_p90_s_4_sessions": 3.0,
                "server_peak_rss_mb": round(rss, 1),
                "client_nice": args.client_nice,
                "environment": environment(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
