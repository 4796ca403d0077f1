"""The agent protocol, shared by both sides: CCP (drivers) and the agent (server). Neither side's code lives here.

Version 1 (DESIGN.md "Agent protocol"): JSON over HTTP, every request signed (ccp.protocol.signing). The agent
reports its version, protocol and capabilities at GET /v1/health; CCP treats a missing capability as "agent too
old for this action".
"""

PROTOCOL_VERSION = 1
# files/diff answers an .env-like file with its per-key table (`env`), masked by ccp.envfile.secrecy.
ENV_TABLE_CAPABILITY = "files.diff.env"
# env/keys?value=NAME answers the non-secret values of the keys named.
ENV_VALUES_CAPABILITY = "env.values"
# hooks/run runs a template set's pre_upgrade/post_upgrade hook CCP sends (issue #16).
HOOKS_CAPABILITY = "hooks.run"
# backups (create, list) and backups/<id>/restore run the set's backup and restore hooks into/from a backup folder.
BACKUPS_CAPABILITY = "backups"
# compose/<action> and scripts/<name> with "stream": true answer the command's output as it is written (JSON lines).
STREAM_CAPABILITY = "output.stream"
# compose/wait looks at the containers until they settle (running and healthy, or failed) or a short wait ends.
WAIT_CAPABILITY = "compose.wait"
# images (GET) answers the registry digests of the images the tenant's containers run (issue #15's update check).
IMAGES_CAPABILITY = "images.digests"
# agent/update and agent/update/confirm: CCP pushes a new agent version (a wheel) and confirms it came back; reported
# only by an agent running under its launcher (ccp.agent.launcher), which can restart it and restore the old code.
AGENT_UPDATE_CAPABILITY = "agent.update"
# agent.update.checks: a new version on trial runs its checks before it serves and reports them in /v1/health's
# "trial" block ({"target", "checks": "passed", "warnings"}); it exits (its launcher restores the old code) when one
# fails, and accepts a confirm only once they passed. CCP confirms such a version only when its trial says passed.
AGENT_UPDATE_CHECKS_CAPABILITY = "agent.update.checks"
CAPABILITIES = ("files.diff", "files.write", "snapshots.restore", "env.keys", "env.patch", "compose.pull",
                "compose.up", "compose.ps", "compose.down", "scripts.run", ENV_TABLE_CAPABILITY, ENV_VALUES_CAPABILITY,
                HOOKS_CAPABILITY, BACKUPS_CAPABILITY, IMAGES_CAPABILITY, WAIT_CAPABILITY,
                STREAM_CAPABILITY)
DRY_RUN_CAPABILITY = "runtime.dry-run"  # reported by hosts whose compose command is the dry-run runtime


def host_capabilities(dry_run: bool) -> list[str]:
    """What a host reports at /v1/health (the agent) or in-process (the local driver)."""
    return list(CAPABILITIES) + ([DRY_RUN_CAPABILITY] if dry_run else [])

# Optional /v1/health fields for enrollment (an older agent omits them; an older CCP ignores them):
# "runtime": {"docker": version | null, "compose": version | null, "problems": [plain sentences]}
HEALTH_RUNTIME = "runtime"
# "instance_details": {slug: {"project", "install_dir", "exists", "count", "files": [top-level names, folders
# ending in "/"], "truncated", "disk_free_bytes"}} -- names only, at most HEALTH_FILES_CAP of them, never a file's
# content; disk_free_bytes is the free space of the install dir's file system (null when it cannot be read).
# "time": the agent host's clock (ISO 8601, UTC), so CCP can tell its skew.
HEALTH_INSTANCE_DETAILS = "instance_details"
HEALTH_FILES_CAP = 50
MIN_KEY_CHARS = 32  # an agent key's least length: the agent refuses a shorter one, CCP's enrollment too
