# Run it: python examples/flask_app.py
# (one request through Flask's test client; fake tracker unless PAKAT_URL set)
"""Flask: init_app binds the signed-in user's e-mail for each request."""

import logging

from _fake_tracker import ensure_tracker, show
from flask import Flask, g, request

from pakat_logging import PakatHandler, get_sender
from pakat_logging.flask import init_app

server = ensure_tracker()
shop = logging.getLogger("shop")
shop.addHandler(PakatHandler())
shop.setLevel(logging.INFO)

app = Flask(__name__)


@app.before_request
def load_user():
    # Stands in for your login: g.user (or Flask-Login's current_user).
    g.user = {"email": request.headers.get("X-User")}


init_app(app)


@app.post("/checkout")
def checkout():
    shop.info("Order placed", extra={"pakat": {"event": "order_completed"}})
    return "thanks"


if __name__ == "__main__":
    app.test_client().post("/checkout", headers={"X-User": "sara@example.com"})
    get_sender().flush(10)
    show(server)
