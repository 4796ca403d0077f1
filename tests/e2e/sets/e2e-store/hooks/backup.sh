#!/bin/sh
# The store's whole volume as a tar, streamed out of the running container into $CCP_BACKUP_DIR.
set -eu
docker compose exec -T store tar -C /data -cf - . > "$CCP_BACKUP_DIR/data.tar"
echo "saved /data ($(wc -c < "$CCP_BACKUP_DIR/data.tar") bytes of tar)"
