"""Lalamove, on-demand couriers (API v3: signed calls, quotation then order, multi-drop).

``adapter`` is the transport and the plugin (``register_couriers``), ``mapping`` the pure
payload, signature and status translation, ``simulator`` the stand-in ``gateway up`` and the
tests talk to. Registered as the ``lalamove`` entry point of the ``gateway.couriers`` group,
like any third-party courier.
"""
