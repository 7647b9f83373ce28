"""The baseline for bench/queue_latency.py: a bare Flask endpoint, served by gunicorn with
the project's settings, that does nothing but answer a small JSON body."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/ping")
def ping():
    return jsonify(id=1, status="succeeded")
