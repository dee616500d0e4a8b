"""Imports every `svc-train` sub-command module so that each registers on the app."""
