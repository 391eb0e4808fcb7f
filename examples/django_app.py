# Run it: python examples/django_app.py
# (one request through Django's test client; fake tracker unless PAKAT_URL set)
"""Django: LOGGING in settings, and the middleware that binds the user."""

import logging

import django
from _fake_tracker import ensure_tracker, show
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import path

from pakat_logging import get_sender

server = ensure_tracker()

settings.configure(
    SECRET_KEY="example-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[
        # Stands in for django.contrib.auth's AuthenticationMiddleware.
        f"{__name__}.HeaderUserMiddleware",
        "pakat_logging.django.PakatEmailMiddleware",
    ],
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"pakat": {"class": "pakat_logging.PakatHandler"}},
        "loggers": {"shop": {"handlers": ["pakat"], "level": "INFO"}},
    },
)


class User:
    is_authenticated = True

    def __init__(self, email):
        self.email = email


class HeaderUserMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.user = User(request.headers["X-User"])
        return self.get_response(request)


def checkout(request):
    # No e-mail here: the middleware bound request.user.email.
    logging.getLogger("shop").info(
        "Order placed", extra={"pakat": {"event": "order_completed"}}
    )
    return HttpResponse("thanks")


urlpatterns = [path("checkout", checkout)]

if __name__ == "__main__":
    django.setup()
    Client().post("/checkout", headers={"X-User": "sara@example.com"})
    get_sender().flush(10)
    show(server)
