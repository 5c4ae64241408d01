"""Screenshots of demo incidents in the Temporal Web UI, for ``docs/ui.md``.

Starts a private dev server with its Web UI on free ports, a worker with the demo
policy (``examples/demo-policy.toml``), declares three demo incidents (one taken to
Fix), then has headless Chromium photograph the list view, filtered the way
``incident ui`` filters it, and the Fix incident's page. Before each screenshot
the rendered page is read back (``--dump-dom``) and must show the incidents, so
a blank or still-loading page fails the run instead of ending up in the docs.

    .venv/bin/python scripts/ui_screenshots.py           # rewrites docs/img/ui-*.png
    .venv/bin/python scripts/ui_screenshots.py --check   # the same into a temporary directory
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fcntl
import json
import logging
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from temporalio.client import Client, WorkflowHandle  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from domain.incident import IncidentView  # noqa: E402
from domain.models import (  # noqa: E402
    AcknowledgeInput,
    Declaration,
    PhaseInput,
    Severity,
    StatusUpdateInput,
)
from domain.settings import Settings  # noqa: E402
from starters.cli.ui import incident_url, incidents_query, list_url  # noqa: E402
from starters.incidents import new_incident_id, start_incident  # noqa: E402
from workers.devserver import DevServerConfig, start_dev_server, stop_process  # noqa: E402
from workers.wiring import build_worker, prepare  # noqa: E402
from workflows.incident import IncidentWorkflow  # noqa: E402

Handle = WorkflowHandle[IncidentWorkflow, IncidentView]

DOCS_IMG = ROOT / "docs" / "img"
DEMO_POLICY = ROOT / "examples" / "demo-policy.toml"
WINDOW = (1400, 900)
PAGE_TEXT = """
[document.body ? document.body.innerText : '',
 ...[...document.querySelectorAll('iframe')].map(frame => {
   try { return frame.contentDocument.body.innerText } catch (error) { return '' }
 })].join('\\n')
"""
"""The page's text, with the iframes the UI renders summaries and details in."""
INCIDENT_COLUMNS = (
    "IncidentSeverity",
    "IncidentPhase",
    "IncidentService",
    "IncidentCommander",
    "IncidentSlaBreached",
)
"""The columns docs/ui.md asks responders to add (Configure Columns)."""
CONFIGURE_COLUMNS = "workflows-summary-table-configuration-button"
"""``data-testid`` of the list view's Configure Columns button (Web UI 2.54)."""
STARTED = time.monotonic()
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "headless_shell")


def elapsed() -> str:
    return f"{time.monotonic() - STARTED:.0f}s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_chromium(explicit: str | None) -> str:
    for candidate in (explicit, *CHROMIUM_CANDIDATES):
        if candidate and (path := shutil.which(candidate)):
            return path
    raise SystemExit("no Chromium found (apt-get install chromium, or pass --chromium PATH)")


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe.

    ``chromium --screenshot --virtual-time-budget=…`` photographs the list view, but
    never finishes on a running workflow's page (the UI keeps a request open, so
    virtual time stands still) and without the budget it photographs the loading
    page. Over the protocol the script waits for the text it expects instead, and
    can set the UI's column preferences first. Calls block: run them in a thread.
    """

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        def at_fds_3_and_4() -> None:  # --remote-debugging-pipe reads fd 3, writes fd 4
            read, write = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser))
            os.dup2(read, 3)
            os.dup2(write, 4)

        self._process = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",  # root in CI containers
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=at_fds_3_and_4,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self._session = ""

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One DevTools command on the page (once :meth:`open_page` ran); returns its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _receive(self, timeout: float = 30.0) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], timeout)
            chunk = os.read(self._in, 1 << 20) if ready else b""
            if not chunk:
                raise RuntimeError("Chromium stopped answering")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def open_page(self) -> None:
        """A page of the window size, which later calls drive."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
        )

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def show(self, url: str, expect: Sequence[str], *, timeout: float = 30.0) -> str:
        """Load ``url`` and wait until its text contains everything in ``expect``."""
        self.call("Page.navigate", {"url": url})
        return self.show_more(expect, timeout=timeout, url=url)

    def show_more(self, expect: Sequence[str], *, timeout: float = 30.0, url: str = "") -> str:
        """Wait until the page's text contains everything in ``expect``."""
        deadline = time.monotonic() + timeout
        while True:
            text = str(self.evaluate(PAGE_TEXT) or "")
            missing = [needle for needle in expect if needle not in text]
            if not missing:
                time.sleep(1.0)  # let the last rows and fonts settle
                return text
            if time.monotonic() > deadline:
                where = url or str(self.evaluate("location.href"))
                raise SystemExit(f"the page never showed {missing} ({where})")
            time.sleep(0.25)

    def scroll_to(self, title: str, selector: str = "h1, h2, h3") -> None:
        """Scroll the first ``selector`` element whose text starts with ``title`` to the top."""
        found = self.evaluate(
            f"(() => {{ const element = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText.trim().startsWith({json.dumps(title)}));"
            " element?.scrollIntoView(); return Boolean(element) })()"
        )
        if not found:
            raise SystemExit(f"nothing starting with {title!r} on the page")
        time.sleep(0.5)

    def click(self, selector: str) -> None:
        """Click the element ``selector`` finds, and give the page a moment to react."""
        if not self.evaluate(
            f"(() => {{ const element = document.querySelector({json.dumps(selector)});"
            " element?.click(); return Boolean(element) })()"
        ):
            raise SystemExit(f"nothing to click at {selector!r}")
        time.sleep(1.0)

    def screenshot(self, target: Path) -> Path:
        """The page as it is now, as a PNG of the window size."""
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        target.write_bytes(base64.b64decode(data))
        print(f"  {target.name} ({elapsed()})", flush=True)
        return target

    def close(self) -> None:
        """Stop Chromium."""
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._out)
        os.close(self._in)


async def demo_incidents(client: Client, task_queue: str) -> dict[str, str]:
    """Three incidents in Detect, Investigate and Fix; returns their IDs by phase."""

    async def declare(title: str, severity: Severity, service: str) -> Handle:
        declaration = Declaration(
            title=title, severity=severity, service=service, declared_by="alice"
        )
        return await start_incident(
            client, declaration, task_queue=task_queue, incident_id=new_incident_id()
        )

    checkout = await declare("Checkout returns 500s", Severity.P1, "checkout")
    payments = await declare("Card payments time out", Severity.P0, "payments")
    search = await declare("Search results are stale", Severity.P2, "search")
    await asyncio.sleep(3)  # so the progress line shows time spent in Detect
    await checkout.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="alice"))
    await payments.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
    await asyncio.sleep(4)
    await checkout.execute_update(
        IncidentWorkflow.set_phase,
        PhaseInput(responder="alice", phase="fix", note="bad deploy 4711"),
    )
    await checkout.execute_update(
        IncidentWorkflow.post_update,
        StatusUpdateInput(responder="alice", text="Rolling back deploy 4711", eta="5 min"),
    )
    await asyncio.sleep(1)
    return {"Fix": checkout.id, "Investigate": payments.id, "Detect": search.id}


def columns_preference(namespace: str) -> str:
    """The UI's saved columns (``localStorage``) with the Incident columns added, as
    Configure Columns leaves them."""
    labels = ("Status", "Workflow ID", *INCIDENT_COLUMNS, "Start")
    columns = [{"label": label, "pinned": label in ("Status", "Workflow ID")} for label in labels]
    return json.dumps({namespace: columns})


def photograph(
    binary: str, base: str, ids: dict[str, str], out_dir: Path, scratch: Path
) -> list[Path]:
    """Every screenshot docs/ui.md shows; blocking (run in a thread while the worker runs)."""
    fix = ids["Fix"]
    browser = Browser(binary, scratch / "chromium")
    written: list[Path] = []
    try:
        browser.open_page()
        browser.show(list_url(base, "default", incidents_query()), list(ids.values()))
        browser.click(f"[data-testid={json.dumps(CONFIGURE_COLUMNS)}]")
        browser.show_more(["Configure Workflows Table", *INCIDENT_COLUMNS])
        browser.scroll_to("Custom Search Attributes", "h2, h3, h4, p, span, div")
        written.append(browser.screenshot(out_dir / "ui-columns.png"))

        preference = json.dumps(columns_preference("default"))
        browser.evaluate(f"localStorage.setItem('namespace-workflow-table-columns', {preference})")
        browser.show(
            list_url(base, "default", incidents_query()),
            [*ids.values(), *INCIDENT_COLUMNS, "checkout", "alice"],
        )
        written.append(browser.screenshot(out_dir / "ui-list.png"))

        browser.show(incident_url(base, "default", fix), [fix, "Timeline"])
        run_page = str(browser.evaluate("location.href")).split("?")[0].rsplit("/", 1)[0]
        browser.show(
            f"{run_page}/user-metadata",
            ["P1 · checkout · Checkout returns 500s", "Fix ●", "Ack by:"],
        )
        written.append(browser.screenshot(out_dir / "ui-details.png"))

        browser.show(f"{run_page}/timeline", ["stakeholder update at", "deliver_via"])
        browser.scroll_to("Timeline")
        written.append(browser.screenshot(out_dir / "ui-timeline.png"))

        browser.show(f"{run_page}/history", ["Event History", "Workflow Execution Started"])
        browser.scroll_to("Event History")
        written.append(browser.screenshot(out_dir / "ui-history.png"))
    finally:
        browser.close()
    for path in written:
        if path.stat().st_size < 20_000:
            raise SystemExit(f"{path.name} looks blank ({path.stat().st_size} bytes)")
    return written


async def run(out_dir: Path, binary: str) -> list[Path]:
    """Everything: server, worker, incidents, screenshots; returns the PNGs written."""
    with tempfile.TemporaryDirectory(prefix="ui-shots-") as raw:
        scratch = Path(raw)
        config = DevServerConfig(
            db_file=scratch / "temporal.db", port=free_port(), ui_port=free_port()
        )
        server = await start_dev_server(config)
        print(f"  dev server and UI up ({elapsed()})", flush=True)
        try:
            client = await Client.connect(config.address, data_converter=pydantic_data_converter)
            settings = Settings(policy=DEMO_POLICY, data_dir=scratch)
            policy, channels = prepare(settings)
            task_queue = f"ui-shots-{uuid.uuid4()}"
            worker = build_worker(
                client,
                task_queue=task_queue,
                policy=policy,
                channels=channels,
                archive_dir=scratch / "timelines",
            )
            async with worker:
                ids = await demo_incidents(client, task_queue)
                print(f"  demo incidents {', '.join(ids.values())} ({elapsed()})", flush=True)
                base = f"http://127.0.0.1:{config.ui_port}"
                out_dir.mkdir(parents=True, exist_ok=True)
                written = await asyncio.to_thread(photograph, binary, base, ids, out_dir, scratch)
        finally:
            await stop_process(server)
    print(f"{len(written)} screenshots in {elapsed()}")
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS_IMG, help="where the PNGs go")
    parser.add_argument(
        "--check", action="store_true", help="write into a temporary directory instead"
    )
    parser.add_argument("--chromium", help="the Chromium binary (default: found on PATH)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    binary = find_chromium(args.chromium)
    if args.check:
        with tempfile.TemporaryDirectory(prefix="ui-shots-check-") as out:
            for path in asyncio.run(run(Path(out), binary)):
                print(f"ok {path.name} ({path.stat().st_size} bytes)")
        return
    for path in asyncio.run(run(args.out, binary)):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
