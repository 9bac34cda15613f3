# The two front-door commands are `make demo` and `make test` (see README.md).
PYTHON := .venv/bin/python

.PHONY: demo test test-long setup lint clean

setup:
	tools/setup-test-env

demo:
	tools/setup-test-env --demo
	$(PYTHON) tools/demo.py

test: setup
	$(PYTHON) -m pytest -q

test-long: setup
	ABRUNNERD_LONG=1 $(PYTHON) -m pytest -q -m "long or not long"

lint: setup
	.venv/bin/vermin --no-tips --violations --target=3.6- abrunnerd
	.venv/bin/vermin --no-tips --violations --target=3.11- abserver

clean:
	rm -rf .venv build .pytest_cache
