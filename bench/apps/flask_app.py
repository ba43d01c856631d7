"""Flask JSON workload: GET /json."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/json")
def json_view():
    return jsonify(message="Hello, World!")


application = app
