"""GrabExpress, Grab's courier service (Delivery API v1, OAuth2 client credentials).

``adapter`` is the transport and the plugin (``register_couriers``), ``mapping`` the pure
payload and status translation, ``simulator`` the stand-in (token endpoint included) that
``gateway up`` and the tests talk to. Registered as the ``grabexpress`` entry point of the
``gateway.couriers`` group, like any third-party courier.
"""
