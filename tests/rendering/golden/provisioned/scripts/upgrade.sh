#!/bin/sh
# Managed by CCP: template set default 1.0.0, tenant riverside.
# Edits here are replaced on the next release upgrade; change the set or the tenant's vars instead.
# Upgrade this install: optional new tag -> database backup -> pull -> recreate -> wait until healthy.
# Usage: scripts/upgrade.sh [TAG]      ("Upgrade Now" in CCP runs this script with no argument)
set -eu

cd "$(dirname "$0")/.."
PROJECT=riverside
DEADLINE="${UPGRADE_DEADLINE:-900}"

compose() {
    timeout "$DEADLINE" docker compose --project-name "$PROJECT" "$@"
}

if [ "$#" -gt 0 ]; then
    TAG="$1"
    case "$TAG" in
        "" | [.-]* | *[!A-Za-z0-9_.-]*)
            echo "upgrade.sh: invalid image tag '$TAG'" >&2
            exit 2
            ;;
    esac
    if grep -q '^IMAGE_TAG=' .env; then
        sed -i.bak "s/^IMAGE_TAG=.*/IMAGE_TAG=$TAG/" .env && rm -f .env.bak
    else
        printf 'IMAGE_TAG=%s\n' "$TAG" >> .env
    fi
fi

echo "==> riverside: backing up databases"
compose exec -T backup backup-now

echo "==> pulling images"
compose pull --quiet

echo "==> recreating services"
compose up -d --remove-orphans --wait --wait-timeout 300

echo "==> running services"
compose ps --format 'table {{.Service}}\t{{.Status}}'
