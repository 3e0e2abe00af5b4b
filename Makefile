# make run: install and start the app; make test: install and run the tests; make bench: benchmarks.
# The Dockerfile runs `make install` too, so the tested install is the shipped one.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PIP_ARGS ?=
PORT ?= 8501

.PHONY: run gradio lint test test-fast bench install install-test browser web static serve-static space-gradio docker-check clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_ARGS) -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

install: $(VENV)/.runtime

install-test: $(VENV)/.test browser web

# onnxruntime-web from npm for the in-browser page (vendored into space-static/ by `make static`)
web: web/node_modules/.installed
web/node_modules/.installed: web/package.json web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd web && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "note: npm is missing: the in-browser page cannot be built and its tests will be skipped"; fi

# a Gradio Space for ZeroGPU (free for personal accounts); pick ZeroGPU hardware in the Space's settings
space-gradio: install
	$(PY) -m pip install -q gradio
	$(PY) tools/build_gradio_space.py space-gradio

# the Dockerfile replayed without Docker (uid 1000, fresh venv, the CMD started and asked for its page)
docker-check:
	$(PYTHON) tools/docker_dry_run.py

# the static Hugging Face Space: every model and MTCNN as ONNX, the page, onnxruntime-web's wasm
static: $(VENV)/.test web
	$(PY) web/build.py space-static

# the built static Space served as Hugging Face serves it (cross-origin isolated, the same headers)
serve-static: static
	$(PY) web/serve.py space-static --port $(or $(STATIC_PORT),8000)

# Debian's Chromium for the browser test (Playwright drives it; nothing is downloaded by Playwright itself)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is missing and this is not root: the browser test will be skipped"; fi; }

run: install
	$(VENV)/bin/streamlit run webapp/app.py --server.port $(PORT)

gradio: install
	$(PY) -m pip install -q gradio
	$(PY) webapp/gradio_app.py

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install-test lint
	$(PY) -m pytest -q

test-fast: install-test
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) benchmarks/training_speed.py
	$(PY) benchmarks/occlusion.py
	$(PY) benchmarks/analysis_speed.py
	$(PY) benchmarks/predict_folder.py
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/explainers.py
	$(PY) benchmarks/video_speed.py
	$(PY) benchmarks/load.py --client protocol --sessions 1 --photos 8
	$(PY) benchmarks/load.py --client protocol --sessions 4 --photos 5
	@if command -v chromium >/dev/null && $(PY) -c "import playwright" 2>/dev/null; then \
	  $(PY) benchmarks/load.py --sessions 4 --photos 5; \
	  $(PY) benchmarks/browser_speed.py; \
	  $(PY) benchmarks/live_speed.py; \
	else echo "load and in-browser benchmarks skipped: they need chromium and playwright (make test installs both)"; fi
	@if [ -n "$$DEEP_EMOTION_DATA" ]; then \
	  $(PY) benchmarks/photo_protocol.py --data-dir "$$DEEP_EMOTION_DATA" --limit 200 --variants tight-x4,context,rotate+20,dark; \
	  $(PY) benchmarks/faithfulness.py --data-dir "$$DEEP_EMOTION_DATA" --n 100 --sensitivity-faces 10; \
	  $(PY) benchmarks/occlusion_stride.py --data-dir "$$DEEP_EMOTION_DATA" --n 50; \
	else echo "photo protocol, faithfulness and occlusion stride skipped: set DEEP_EMOTION_DATA to the data sets' folder"; fi

clean:
	rm -rf $(VENV) runs .pytest_cache artifacts space-static space-gradio web/node_modules
