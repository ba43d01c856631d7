"""A Flask JSON endpoint for BenchmarkInterpreters."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/json")
def json_route():
    return jsonify(message="Hello, world!", numbers=[1, 2, 3], nested={"ok": True})
