"""Release intake, the low layer: what forges and registries send, how each proves it sent it, what the registry
says a tag points to now, and which tag a policy picks.

- `ccp.intake.events`: the shared shapes (Hint, Parsed, Secret, IntakeError) and the signature checks every
  provider uses (constant-time HMAC and token comparisons, Standard Webhooks).
- `ccp.intake.providers`: one small module per provider family, each a Provider (verify, delivery id, parse).
- `ccp.intake.policy`: the tag policy (semver range, include/exclude, no downgrade).
- `ccp.intake.registry`: the OCI distribution client (tag -> digest, tag list, image age) with the bearer-token flow.

Nothing here touches the database, the web app or the services (tests/foundation/test_layers.py): the decision
service (ccp.services.intake) puts these together.
"""
