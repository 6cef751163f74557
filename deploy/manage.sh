#!/bin/sh
# manage.py with the production environment, as the service user, e.g.
#   sudo -u contactcenter /srv/contactcenter/deploy/manage.sh migrate --no-input
set -eu
ENV_FILE="${CONTACTCENTER_ENV_FILE:-/etc/contactcenter/contactcenter.env}"
cd "$(dirname "$0")/.."
set -a
. "$ENV_FILE"
set +a
exec .venv/bin/python manage.py "$@"
