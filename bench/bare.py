"""The baseline for ingest: a bare Flask JSON endpoint, served by the same gunicorn settings
as the gateway. It parses the same body and answers a small JSON object, nothing more."""

from flask import Flask, request

app = Flask("bare")


@app.post("/ping")
def ping():
    body = request.get_json()
    return {"ok": True, "fields": len(body)}, 202
