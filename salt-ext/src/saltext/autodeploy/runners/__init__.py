"""Salt runners shipped by saltext.autodeploy (loaded by Salt's loader, not imported)."""
