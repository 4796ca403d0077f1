"""Template sets (sets.py), the values they are rendered with (context.py), deterministic rendering (render.py) and
the `ccp render` command (cli.py). See docs/templates.md."""
