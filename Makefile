# The two front-door commands are `make demo` and `make test` (see README.md).
PYTHON := .venv/bin/python

.PHONY: demo test test-long setup lint clean

setup:
	tools/setup-test-env

demo: setup
	$(PYTHON) tools/demo.py

test: setup
	$(PYTHON) -m pytest -q

test-long: setup
	ABRUNNERD_LONG=1 $(PYTHON) -m pytest -q -m "long or not long"

lint: setup
	.venv/bin/vermin --no-tips --violations --target=3.8- abrunnerd abserver

clean:
	rm -rf .venv build .pytest_cache
