"""Public-service integration gateway: agencies ask, courier providers carry.

Plugin authors need only what this module exports::

    from gateway import hookimpl, Service
"""

from .app import create_app
from .couriers import CourierAdapter
from .hookspecs import hookimpl
from .services import Service

__all__ = ["CourierAdapter", "Service", "create_app", "hookimpl"]
__version__ = "0.1.0"
