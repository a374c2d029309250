# The two commands of the README:
#   make quickstart   set up .venv, then run the quickstart loop on the embedded SmolLM2 model (offline):
#                     baseline evaluation + two rounds of self-training, table and plot at the end
#   make test         set up .venv, then run the whole test suite
# Run directories go under runs/; the converted model and caches under $SYNTHLOOP_HOME
# (default ~/.cache/synthloop). The tests keep everything inside the project, under .cache/.

.PHONY: setup quickstart test lint bench
setup:
	@bash scripts/setup.sh

quickstart: setup
	.venv/bin/synthloop loop configs/loop/quickstart.yaml

test: setup
	SYNTHLOOP_HOME=$${SYNTHLOOP_HOME:-$(CURDIR)/.cache/synthloop} .venv/bin/python -m pytest -q -ra

lint: setup
	.venv/bin/ruff check .
