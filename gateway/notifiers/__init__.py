"""Notifiers: the channels that tell people about their requests (WhatsApp, SMS; issue 18).

None exists yet. Each will take the couriers' shape (``gateway/couriers/``): one folder per
provider, ``gateway/notifiers/<name>/`` with ``adapter.py`` (transport, and the plugin that
registers it), ``mapping.py`` (pure payload and status translation, no I/O) and
``simulator.py`` (the stand-in that sandbox mode and the tests talk to), registered through an
entry point of its own group (``gateway.notifiers``), the built-in ones exactly as a third
party's. The contract they implement belongs in this module once the first notifier needs it.
"""
