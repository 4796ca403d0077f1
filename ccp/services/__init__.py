"""Use cases. Views, CLI commands and jobs call these; they hold the rules, not the callers."""
