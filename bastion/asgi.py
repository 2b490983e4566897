"""ASGI entry point: Django for HTTP, Channels for websockets."""

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")

django_asgi_app = get_asgi_application()

# NOTE: websocket routes are added with the live dashboard; until then every
# connection is HTTP.
application = ProtocolTypeRouter({"http": django_asgi_app})
