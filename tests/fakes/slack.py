"""A small Slack Web API server on loopback that records every call.

It implements the methods the Slack channel uses, with Slack's response
shapes and error codes, so the real ``slack_sdk.AsyncWebClient`` talks to it
(``files_upload_v2`` too: the upload URL it hands out is served here as well).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    """One recorded Web API call."""

    method: str
    args: dict[str, Any]
    at: float
    status: int = 200
    error: str | None = None


@dataclass
class FakeChannel:
    id: str
    name: str
    is_im: bool = False
    is_archived: bool = False
    members: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeFile:
    """A file uploaded through ``files.getUploadURLExternal`` and its upload URL."""

    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str = ""
    shared_in: list[str] = field(default_factory=list)


@dataclass
class Failure:
    method: str
    status: int = 200
    error: str = "internal_error"
    retry_after: int | None = None
    after_effect: bool = False
    """Apply the call (e.g. really post) and then answer with the failure: a lost response."""


class FakeSlack:
    """The fake server; ``await start()`` then point ``SLACK_API_URL`` at ``api_url``."""

    BOT_USER = "UBOT"

    def __init__(self, token: str = "xoxb-test-token") -> None:
        self.token = token
        self.calls: list[Call] = []
        self.channels: dict[str, FakeChannel] = {}
        self.users_by_email: dict[str, str] = {}
        self.failures: list[Failure] = []
        self.files: dict[str, FakeFile] = {}
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.api_url = ""
        self.outage: Failure | None = None
        """While set, every call is recorded and answered with this failure (:meth:`go_down`)."""
        self.latency = 0.0
        """Seconds each call takes before it is answered (keeps deliveries in flight)."""

    # ------------------------------------------------------------ control

    def add_channel(
        self,
        name: str,
        *,
        archived: bool = False,
        members: list[str] | None = None,
        channel_id: str | None = None,
    ) -> FakeChannel:
        """A channel that exists before the test starts."""
        channel = FakeChannel(
            id=channel_id or f"C{next(self._ids):04d}",
            name=name,
            is_archived=archived,
            members=members or [],
        )
        self.channels[channel.id] = channel
        return channel

    def fail(self, method: str, **kwargs: Any) -> None:
        """Make the next call of ``method`` fail (see :class:`Failure`)."""
        self.failures.append(Failure(method=method, **kwargs))

    def go_down(self, status: int = 503, error: str = "service_unavailable") -> None:
        """Answer every call with HTTP ``status`` until :meth:`come_back` (nothing is applied)."""
        self.outage = Failure(method="*", status=status, error=error)

    def come_back(self) -> None:
        """End the outage :meth:`go_down` began."""
        self.outage = None

    def by_name(self, name: str) -> FakeChannel:
        return next(c for c in self.channels.values() if c.name == name.lstrip("#"))

    def posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages really posted (in order), optionally only in one channel (name or ID)."""
        out: list[dict[str, Any]] = []
        for ch in self.channels.values():
            if channel is None or channel in (ch.id, ch.name, "#" + ch.name):
                out.extend({**m, "channel": ch.id} for m in ch.messages)
        return sorted(out, key=lambda m: float(m["ts"]))

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    # ------------------------------------------------------------- server

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/{file_id}", self._upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_url = f"http://127.0.0.1:{port}/api/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _upload(self, request: web.Request) -> web.Response:
        """Step 2 of ``files_upload_v2``: the bytes, posted to the URL step 1 gave."""
        upload = self.files.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="unknown upload")
        upload.content = await request.read()
        return web.Response(text=f"OK - {len(upload.content)}")

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        call = Call(method=method, args=args, at=time.monotonic())
        self.calls.append(call)
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.outage is not None:
            body = {"ok": False, "error": self.outage.error}
            return self._reply(call, body, self.outage.status)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._reply(call, {"ok": False, "error": "invalid_auth"})
        failure = next((f for f in self.failures if f.method == method), None)
        if failure is not None:
            self.failures.remove(failure)
            if failure.after_effect:
                self._dispatch(method, args)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            error = "ratelimited" if failure.status == 429 else failure.error
            return self._reply(call, {"ok": False, "error": error}, failure.status, headers)
        return self._reply(call, self._dispatch(method, args))

    def _reply(
        self,
        call: Call,
        body: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        call.status = status
        call.error = None if body.get("ok") else body.get("error")
        return web.json_response(body, status=status, headers=headers)

    # ------------------------------------------------------------ methods

    def _dispatch(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        answer: dict[str, Any] = handler(args)
        return answer

    def _channel(self, args: dict[str, Any]) -> FakeChannel | None:
        return self.channels.get(str(args.get("channel", "")))

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": self.BOT_USER}

    def _m_conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args["name"])
        if any(c.name == name for c in self.channels.values()):
            return {"ok": False, "error": "name_taken"}
        channel = self.add_channel(name, members=[self.BOT_USER])
        return {"ok": True, "channel": {"id": channel.id, "name": name}}

    def _m_conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        skip_archived = args.get("exclude_archived") in (True, "1", "true")
        listed = [
            {"id": c.id, "name": c.name, "is_archived": c.is_archived}
            for c in self.channels.values()
            if not c.is_im and not (c.is_archived and skip_archived)
        ]
        return {"ok": True, "channels": listed, "response_metadata": {"next_cursor": ""}}

    def _m_conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if channel.is_archived:
            return {"ok": False, "error": "is_archived"}
        if self.BOT_USER not in channel.members:
            channel.members.append(self.BOT_USER)
        return {"ok": True, "channel": {"id": channel.id}}

    def _m_conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        users = str(args["users"]).split(",")
        if any(u in channel.members for u in users):
            return {"ok": False, "error": "already_in_channel"}
        if any(not u.startswith("U") for u in users):
            return {"ok": False, "error": "user_not_found"}
        channel.members.extend(users)
        return {"ok": True, "channel": {"id": channel.id}}

    def _m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args["users"])
        existing = next((c for c in self.channels.values() if c.is_im and c.name == user), None)
        if existing is None:
            existing = FakeChannel(id=f"D{next(self._ids):04d}", name=user, is_im=True)
            self.channels[existing.id] = existing
        return {"ok": True, "channel": {"id": existing.id}}

    def _m_users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users_by_email.get(str(args.get("email", "")))
        if user is None:
            return {"ok": False, "error": "users_not_found"}
        return {"ok": True, "user": {"id": user}}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if channel.is_archived:
            return {"ok": False, "error": "is_archived"}
        if not channel.is_im and self.BOT_USER not in channel.members:
            return {"ok": False, "error": "not_in_channel"}
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        ts = f"{1_700_000_000 + next(self._ts)}.000100"
        message = {"type": "message", "ts": ts, "text": args.get("text", "")}
        if metadata:
            message["metadata"] = metadata
        channel.messages.append(message)
        return {"ok": True, "channel": channel.id, "ts": ts, "message": message}

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not channel.is_im and self.BOT_USER not in channel.members:
            return {"ok": False, "error": "not_in_channel"}
        with_metadata = args.get("include_all_metadata") in (True, "1", "true", "True")
        messages = [
            {k: v for k, v in m.items() if with_metadata or k != "metadata"}
            for m in reversed(channel.messages)
            if m.get("thread_ts") in (None, m["ts"])  # like Slack: no thread replies
        ]
        return {"ok": True, "messages": messages, "has_more": False}

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not channel.is_im and self.BOT_USER not in channel.members:
            return {"ok": False, "error": "not_in_channel"}
        ts = str(args.get("ts", ""))
        thread = [m for m in channel.messages if m["ts"] == ts or m.get("thread_ts") == ts]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return {"ok": True, "messages": thread, "has_more": False}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        upload = FakeFile(
            id=f"F{next(self._ids):04d}",
            filename=str(args["filename"]),
            length=int(args["length"]),
        )
        self.files[upload.id] = upload
        root = self.api_url.removesuffix("api/")
        return {"ok": True, "file_id": upload.id, "upload_url": f"{root}upload/{upload.id}"}

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        listed = json.loads(str(args.get("files", "[]")))
        uploads = [self.files.get(str(item.get("id"))) for item in listed]
        if not uploads or any(u is None or u.content is None for u in uploads):
            return {"ok": False, "error": "file_not_found"}
        shared = [u for u in uploads if u is not None]
        for upload, item in zip(shared, listed, strict=True):
            upload.title = str(item.get("title") or upload.filename)
        files = [{"id": u.id, "name": u.filename, "title": u.title} for u in shared]
        channel_id = args.get("channel_id")
        if channel_id:
            channel = self.channels.get(str(channel_id))
            if channel is None:
                return {"ok": False, "error": "channel_not_found"}
            if not channel.is_im and self.BOT_USER not in channel.members:
                return {"ok": False, "error": "not_in_channel"}
            ts = f"{1_700_000_000 + next(self._ts)}.000100"
            message: dict[str, Any] = {
                "type": "message",
                "ts": ts,
                "text": args.get("initial_comment") or "",
                "files": files,
            }
            if args.get("thread_ts"):
                message["thread_ts"] = str(args["thread_ts"])
            channel.messages.append(message)
            for upload in shared:
                upload.shared_in.append(channel.id)
        return {"ok": True, "files": files}
