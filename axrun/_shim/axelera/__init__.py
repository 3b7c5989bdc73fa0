"""axrun's stand-in for the ``axelera`` package, on the path only under ``axrun exec``.

``axelera.runtime`` resolves to axrun's emulator; any other ``axelera`` subpackage
(from a real Voyager SDK) stays importable through the extended package path.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
