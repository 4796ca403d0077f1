"""How CCP reaches a tenant: one protocol (base), signed HTTP to its agent (remote), or in-process hostops (local)."""

from __future__ import annotations

from ccp.drivers.base import (  # noqa: F401 - the public surface
    AgentAuthFailed, AgentRejected, AgentUnreachable, Driver, DriverError, FileDiff,
)


def driver_for(instance, settings) -> "Driver":
    """The driver for an instance: RemoteDriver (its agent) or LocalDriver (hostops on this host)."""
    if instance.driver == "local":
        from ccp.drivers.local import LocalDriver

        return LocalDriver.for_instance(instance, settings)
    from ccp.drivers.remote import RemoteDriver

    return RemoteDriver.for_instance(instance, settings)
