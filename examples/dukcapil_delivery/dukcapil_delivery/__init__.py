"""Civil-registry document delivery (Dukcapil): a service plugin for the gateway.

Only the hook implementations live here; the service is in ``service.py`` and what it
accepts in ``schemas.py``. The gateway finds this module through the ``gateway`` entry point
declared in ``pyproject.toml``.
"""

from gateway import hookimpl

from .service import DukcapilDeliveryService


@hookimpl
def register_services():
    return [DukcapilDeliveryService()]
