"""`python -m ccp.cli ...` is the `ccp` command (the demo and the tests start web and worker children this way)."""

from ccp.cli import main

main()
