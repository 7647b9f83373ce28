# The README's two commands are `make demo` and `make test`; both set up everything first.
.PHONY: setup demo up down test bench

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

test: setup
	scripts/services.sh postgres
	.venv/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	.venv/bin/python bench/sandbox_throughput.py
