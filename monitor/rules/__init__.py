"""Rule kinds: pure evaluators over what one poll changed, one module per kind."""
