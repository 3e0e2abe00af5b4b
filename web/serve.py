"""Serve a built static Space as Hugging Face serves it: `python web/serve.py [FOLDER] [--port 8000]`
(`make serve-static` builds space-static/ first). Every response carries the cross-origin isolation headers of
the Space's front matter (build.HEADERS), so the page is cross-origin isolated as on the Space."""

from __future__ import annotations

import argparse
import functools
import http.server
import threading
from pathlib import Path

HEADERS = {
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the isolation headers (`isolated=False`: without them) and quiet logs."""

    isolated = True
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def end_headers(self) -> None:
        if self.isolated:
            for k, v in HEADERS.items():
                self.send_header(k, v)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, *args) -> None:
        pass


def start(folder: str | Path, port: int = 0, isolated: bool = True) -> http.server.ThreadingHTTPServer:
    """A server of `folder` on 127.0.0.1 running in a daemon thread (`port` 0: any free port); `.shutdown()` it."""
    handler = type("Handler", (IsolatedHandler,), {"isolated": isolated})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?", default=Path(__file__).resolve().parent.parent / "space-static")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()
    if not (args.folder / "index.html").is_file():
        raise SystemExit(f"{args.folder} holds no built page: run `make static` first")
    server = start(args.folder, args.port)
    print(f"serving {args.folder} at http://127.0.0.1:{args.port}/ (cross-origin isolated); Ctrl+C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
