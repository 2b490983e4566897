"""The websocket stream behind the live incident list."""

import logging
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from mitigations.services.approvals import can_decide
from watchers.services import live

logger = logging.getLogger(__name__)

# Close codes in the 4000-4999 range that websocket leaves to applications.
# They mirror HTTP 401 and 403, and tell live.js not to reconnect.
CLOSE_NOT_SIGNED_IN = 4401
CLOSE_FORBIDDEN = 4403
VIEW_PERMISSION = "watchers.view_incident"


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    """Send a snapshot of the list on connect, then every change as it commits.

    The connection is accepted before a failed check is closed, because a
    close before accept reaches the browser as a bare HTTP 403 without the
    code that gives the reason.
    """

    async def connect(self) -> None:
        await self.accept()
        code = await self._rejection_code()
        if code is not None:
            await self.close(code=code)
            return

        # Read once: rows with approve and reject buttons go only to users who
        # held the permission when they connected.
        self.can_decide = await database_sync_to_async(can_decide)(self.scope["user"])
        await self.channel_layer.group_add(live.GROUP, self.channel_name)
        await self.send_json(await self._snapshot())

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(live.GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ping":
            # The pong carries the last number handed out, so a page whose
            # last message was lost, with nothing sent after it, notices at
            # its next heartbeat instead of at the next change.
            sequence = await sync_to_async(live.current_sequence)()
            await self.send_json({"type": "pong", "seq": sequence})
        elif kind == "resume":
            # A fresh snapshot is the simplest catch-up that loses nothing,
            # whatever "after" contains, because the list is one page of rows.
            await self.send_json(await self._snapshot())
        else:
            await self.send_json(
                {
                    "type": "error",
                    "error": f"unknown message type {kind!r}: send 'ping' or 'resume'",
                }
            )

    async def dashboard_message(self, event: dict[str, Any]) -> None:
        if self.can_decide and "decider_text" in event:
            await self.send(text_data=event["decider_text"])
        else:
            await self.send(text_data=event["text"])

    async def _snapshot(self) -> dict[str, Any]:
        return await database_sync_to_async(live.snapshot)(can_decide=self.can_decide)

    async def _rejection_code(self) -> int | None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return CLOSE_NOT_SIGNED_IN
        allowed = await database_sync_to_async(user.has_perm)(VIEW_PERMISSION)
        if not allowed:
            logger.info(
                "dashboard websocket rejected for %s: missing %s",
                user.get_username(),
                VIEW_PERMISSION,
            )
            return CLOSE_FORBIDDEN
        return None
