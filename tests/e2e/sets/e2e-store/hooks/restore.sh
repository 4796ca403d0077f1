#!/bin/sh
# Puts the volume back as the backup has it: everything in /data is replaced.
set -eu
docker compose exec -T store sh -c 'rm -rf /data/* && tar -C /data -xf -' < "$CCP_BACKUP_DIR/data.tar"
echo "restored /data from $CCP_BACKUP_DIR/data.tar"
