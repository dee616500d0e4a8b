"""Imports every `svc-run` sub-command module so that each registers on the app."""
