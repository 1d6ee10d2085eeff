"""The application above the services: the `jaklapor` command, the runner that starts services in one process, and
the local mode's stores.

Layers, each importing only from those below it: `jaklapor_app` → `services.<name>` → `jaklapor` (the shared kernel).
"""
