#!/bin/sh
# Managed by CCP: template set default 1.0.0, tenant northside.
# Edits here are replaced on the next release upgrade; change the set or the tenant's vars instead.
# Refresh the platform images under the *same* tag (rebuilt images, new digests) and restart only what changed.
# Orchestration files and .env are left alone. Usage: scripts/image-upgrade.sh
set -eu

cd "$(dirname "$0")/.."
PROJECT=northside
DEADLINE="${UPGRADE_DEADLINE:-600}"
PLATFORM_SERVICES="api worker admin public backup"

compose() {
    timeout "$DEADLINE" docker compose --project-name "$PROJECT" "$@"
}

echo "==> northside: pulling platform images"
# shellcheck disable=SC2086 # the service list is meant to split into words
compose pull --quiet $PLATFORM_SERVICES

echo "==> recreating services whose image changed"
# shellcheck disable=SC2086
compose up -d --no-deps --wait --wait-timeout 300 $PLATFORM_SERVICES

echo "==> removing superseded images"
timeout 120 docker image prune --force --filter "label=com.docker.compose.project=$PROJECT" >/dev/null || true
