"""tornado-callback: a provisioning-callback server compatible with AWX's job-template callback.

Plugin authors import ``hookimpl`` from here and the request/result types from
``tornado_callback.resolution``; nothing else of the package is their API.
"""

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "tornado_callback"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
