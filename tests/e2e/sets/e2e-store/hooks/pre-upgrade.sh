#!/bin/sh
# Refuses the upgrade while the operator's marker file "upgrade-blocked" exists (and says why, secret and all:
# the agent and CCP mask it).
set -eu
echo "pre-upgrade $CCP_FROM_TAG -> $CCP_TO_TAG (upgrade $CCP_UPGRADE_ID)"
if [ -f upgrade-blocked ]; then
  echo "blocked by upgrade-blocked; the app runs with $(grep '^APP_SECRET=' .env)"
  exit 1
fi
