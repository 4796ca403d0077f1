"""The shared .env module: dotenv parsing/patching (dotenv.py) and compose variable analysis (compose_refs.py).

One module tree used by the agent (host side) and by rendering/coverage (CCP side), so both read .env exactly the
same way docker compose does.
"""
