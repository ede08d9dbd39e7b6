"""pluggy's markers for this project: ``hookimpl`` for plugins, ``hookspec`` for the contract."""

import pluggy

PROJECT_NAME = "tornado_callback"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
