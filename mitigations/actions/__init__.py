"""Built-in actions, one module per kind; importing this registers them all."""

from mitigations.actions import analysis as analysis
from mitigations.actions import commands as commands
from mitigations.actions import http_calls as http_calls
from mitigations.actions import kubernetes as kubernetes
from mitigations.actions import notifications as notifications
from mitigations.actions import postgres as postgres
from mitigations.actions import redis_store as redis_store
