"""File operations on a tenant host, in one place: diff, atomic write sets, snapshots and restore.

The pieces live in their own modules (diff.py, atomic.py, snapshots.py) to stay readable; this module is the
public face used by TenantHost.
"""
from ccp.hostops.atomic import PlannedWrite, apply_write_set, recover, write_file_atomic
from ccp.hostops.diff import DiffResult, split_lines, unified_diff
from ccp.hostops.snapshots import SnapshotStore, new_snapshot_id

__all__ = ["DiffResult", "PlannedWrite", "SnapshotStore", "apply_write_set", "new_snapshot_id", "recover",
           "split_lines", "unified_diff", "write_file_atomic"]
