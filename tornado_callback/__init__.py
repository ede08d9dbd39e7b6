"""tornado-callback: a provisioning-callback server compatible with AWX's job-template callback.

Resolver plugins import ``tornado_callback.plugin``; nothing else of the
package is their API.
"""

__version__ = "0.1.0"
