#!/bin/sh
# Creates Temporal's two PostgreSQL databases (history and SQL visibility) and brings
# their schemas up to the version this admin-tools image ships. Run by the
# temporal-schema service of docker-compose.yml before the server starts; safe to run
# again on every `docker compose up` (existing databases are kept, schemas only move up).
set -eu

: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS to the PostgreSQL host}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
: "${SQL_PASSWORD:?set SQL_PASSWORD (the PostgreSQL password; temporal-sql-tool reads it)}"
PORT=${DB_PORT:-5432}
SCHEMA=/etc/temporal/schema/postgresql/v12

sql() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" "$@"
}

for db in temporal:temporal temporal_visibility:visibility; do
  name=${db%%:*}
  versions=$SCHEMA/${db##*:}/versioned
  echo "schema of database $name"
  sql --db "$name" create
  sql --db "$name" setup-schema -v 0.0
  sql --db "$name" update-schema -d "$versions"
done
echo "PostgreSQL schemas are up to date"
