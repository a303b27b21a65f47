"""GO-JEK rides (GoRide, GoCar), on a provisional dialect of our own until GO-JEK documents
its partner ride API.

``adapter`` is the transport and the plugin (``register_couriers``), ``mapping`` the pure
payload and status translation (the dialect), ``simulator`` the only thing that speaks it
for now. Registered as the ``goride`` entry point of the ``gateway.couriers`` group, like any
third-party courier.
"""
