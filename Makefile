# The two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format migrate seed run-prod prod-env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# A local .env with fresh secrets, made once; real environment variables win.
.env: | $(BIN)/python
	$(BIN)/python -c "import secrets, base64; \
	print('DEBUG=true'); \
	print('SECRET_KEY=' + secrets.token_urlsafe(50)); \
	print('FIELD_ENCRYPTION_KEYS=' + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())" > $@

migrate: $(VENV)/.installed .env
	$(BIN)/python manage.py migrate --no-input

seed: migrate
	$(BIN)/python manage.py seed_demo

run: seed
	$(BIN)/honcho start -f Procfile.dev

# The production processes (Procfile: gunicorn, a Celery worker per queue,
# beat) on this machine, against real PostgreSQL and Redis or RabbitMQ given
# by DATABASE_URL and CELERY_BROKER_URL. See docs/DEPLOYMENT.md.
run-prod: export DEBUG ?= false
run-prod: prod-env $(VENV)/.installed .env
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py collectstatic --no-input
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile -e /dev/null

# Refuse the embedded defaults: production needs shared database and broker servers.
prod-env:
	@if [ -z "$$DATABASE_URL" ]; then \
	  echo "run-prod: DATABASE_URL is not set; export it, e.g. DATABASE_URL=postgres://USER@HOST:5432/contactcenter" >&2; exit 1; fi
	@case "$$CELERY_BROKER_URL" in \
	  "") echo "run-prod: CELERY_BROKER_URL is not set; export it, e.g. CELERY_BROKER_URL=redis://HOST:6379/0" >&2; exit 1;; \
	  filesystem:*) echo "run-prod: CELERY_BROKER_URL is the file-system broker, which only serves one machine in development; use Redis or RabbitMQ, e.g. redis://HOST:6379/0" >&2; exit 1;; \
	esac

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

# Fault-injection tests (docs/RELIABILITY.md): slow, and they start their own
# Redis, PostgreSQL cluster, Celery workers, beat and gunicorn. A database of
# their own on the local PostgreSQL, so they never meet another run's.
.PHONY: faults
faults: $(VENV)/.installed-dev
	RUN_FAULTS=1 DATABASE_URL="$${FAULTS_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/contactcenter_faults}" \
	  $(BIN)/pytest tests/faults -v
