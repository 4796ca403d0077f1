"""``python -m ccp.agent --config agent.toml``: the same as ``ccp agent``."""
from ccp.agent.cli import agent_command

if __name__ == "__main__":
    agent_command(prog_name="ccp agent")
