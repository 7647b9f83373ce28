# The README's two commands are `make demo` and `make test`; both set up everything first.
.PHONY: setup demo test bench

setup:
	scripts/bootstrap.sh

demo: setup
	.venv/bin/python -m sandbox verify --mbpp ../shared/datasets/mbpp/mbpp.jsonl

test: setup
	.venv/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	.venv/bin/python bench/sandbox_throughput.py
