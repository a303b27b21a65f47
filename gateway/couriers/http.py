"""The HTTP session a courier adapter calls its provider with, its pool sized for a batch.

A dispatch batch (``gateway.batch``) makes ``dispatch.batch_concurrency`` provider calls at
once, and they may all go to one courier. requests' default transport keeps 10 connections
per host (``pool_maxsize``); a call beyond them opens a connection that urllib3 throws away
when it ends ("Connection pool is full, discarding connection"), so under load every such
call pays a new TCP and TLS handshake. The pool here holds at least as many connections as a
batch makes calls.
"""

from __future__ import annotations

import requests
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter


def courier_session(concurrency: int) -> requests.Session:
    """A session for one courier instance, keeping up to ``concurrency`` connections (never
    fewer than requests' default) to each host."""
    session = requests.Session()
    pool_size = max(DEFAULT_POOLSIZE, concurrency)
    for scheme in ("https://", "http://"):
        session.mount(scheme, HTTPAdapter(pool_maxsize=pool_size))
    return session
