"""The fixtures come from the gateway's pytest plugin (installed with the gateway): a real
Redis, an app on a temporary SQLite database, an agency with a key, the GO-SEND simulator
and a worker. This file only says which plugins the app is built with: exactly this one, so
the tests do not depend on whatever else is installed."""

import pytest

import dukcapil_delivery


@pytest.fixture
def gateway_plugins():
    return [dukcapil_delivery]
