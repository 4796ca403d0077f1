"""CCP: control plane for fleets of self-hosted docker-compose tenants.

The package face holds the version only; the app factory is `ccp.app.create_app`.
"""

__version__ = "0.1.0"
