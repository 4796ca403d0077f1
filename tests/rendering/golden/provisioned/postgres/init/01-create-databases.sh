#!/bin/sh
# Managed by CCP: template set default 1.0.0, tenant riverside.
# Edits here are replaced on the next release upgrade; change the set or the tenant's vars instead.
# Runs once, on the first start of an empty data directory: creates the newsletter database and a read-only
# metrics user. Passwords come from the container environment (see docker-compose.yml), never from this file.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v newsletter_db="$NEWSLETTER_DB_NAME" -v newsletter_user="$NEWSLETTER_DB_USER" \
    -v newsletter_password="$NEWSLETTER_DB_PASSWORD" \
    -v metrics_user="$METRICS_DB_USER" -v metrics_password="$METRICS_DB_PASSWORD" <<'SQL'
CREATE ROLE :"newsletter_user" LOGIN PASSWORD :'newsletter_password';
CREATE DATABASE :"newsletter_db" OWNER :"newsletter_user" ENCODING 'UTF8';
CREATE ROLE :"metrics_user" LOGIN PASSWORD :'metrics_password';
GRANT pg_monitor TO :"metrics_user";
SQL

echo "tenant riverside: created database $NEWSLETTER_DB_NAME and roles $NEWSLETTER_DB_USER, $METRICS_DB_USER"
