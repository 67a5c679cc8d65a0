"""Helpers shared by the loader modules; the C glue lives in libautodeploy.py."""
