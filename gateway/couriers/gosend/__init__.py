"""GO-SEND, GO-JEK's courier service (GoKilat partner API v10).

``adapter`` is the transport and the plugin (``register_couriers``), ``mapping`` the pure
payload and status translation, ``simulator`` the stand-in ``gateway up`` and the tests talk
to. Registered as the ``gosend`` entry point of the ``gateway.couriers`` group, like any
third-party courier.
"""
