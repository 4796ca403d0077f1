"""CCP: control plane for fleets of self-hosted docker-compose tenants."""

__version__ = "0.1.0"
