"""The public services shipped with the gateway, each a pluggy plugin like any third party's."""
