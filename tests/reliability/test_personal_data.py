"""Personal data after a whole delivery: encrypted at rest, absent from Redis and from the
logs, and only what a courier needs at the provider (checked on what the simulator got).

Every table of the database and every key of Redis is read raw, as an attacker with a copy of
either would read it, and searched for the patient's NIK, name, phone, address and medicine.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import inspect, text

from gateway.testing import wait_for_status
from tests.conftest import bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"


def _secrets(body: dict) -> dict[str, str]:
    patient = body["patient"]
    return {"nik": patient["nik"], "name": patient["name"], "phone": patient["phone"][-10:],
            "address": patient["address"], "medicine": body["items"][0]["name"]}


def _database_text(gateway) -> str:
    chunks = []
    with gateway.db.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


def _redis_text(redis) -> str:
    chunks = []
    for key in redis.scan_iter(count=500):
        kind = redis.type(key).decode()
        chunks.append(repr(key))
        if kind == "string":
            chunks.append(repr(redis.get(key)))
        elif kind == "hash":
            chunks.append(repr(redis.hgetall(key)))
        elif kind == "list":
            chunks.append(repr(redis.lrange(key, 0, -1)))
        elif kind == "set":
            chunks.append(repr(redis.smembers(key)))
        elif kind == "zset":
            chunks.append(repr(redis.zrange(key, 0, -1)))
    return "\n".join(chunks)


def test_personal_data_is_nowhere_in_clear_but_where_it_must_be(
        gosend_app, gateway_gosend, medicine_body, gateway_redis, caplog):
    caplog.set_level(logging.DEBUG)
    app = gosend_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    client = app.test_client()
    created = client.post(CREATE, json=medicine_body, headers=bearer(key))
    assert created.status_code == 202
    request_id = created.get_json()["id"]
    wait_for_status(app, request_id, "delivered")
    secrets = _secrets(medicine_body)

    stored, queued = _database_text(gateway), _redis_text(gateway_redis)
    assert request_id in stored and stored.count("delivered") > 0   # we did read the rows
    assert gateway_redis.dbsize() > 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for what, value in secrets.items():
        assert value not in stored, f"the {what} is stored in clear"
        assert value not in queued, f"the {what} is in Redis"
        assert value not in logged, f"the {what} is in the logs"

    # The courier got what it needs to deliver (a name, a phone, an address) and no more.
    (booking,) = gateway_gosend.bookings.values()
    sent = json.dumps(booking["payload"])
    assert secrets["name"] in sent and secrets["address"] in sent
    assert secrets["nik"] not in sent and secrets["medicine"] not in sent
    # The agency that asked still reads it back, decrypted.
    detail = client.get(f"/api/v1/requests/{request_id}/fhir", headers=bearer(key))
    assert detail.status_code == 200 and secrets["medicine"] in detail.get_data(as_text=True)
