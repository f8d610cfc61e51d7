"""Real-time progress over Server-Sent Events (seed 000's WebSocket progress), no framework.

Run it::

    python examples/progress_sse.py [--store DIR] [--port N]

It serves ``GET /jobs/<job>/events`` on 127.0.0.1, starts a pipeline, and
connects a client that prints each event until the job completes.  The
endpoint is the few lines of ``sse_events``: ``ckpt.watch`` yields a
progress snapshot whenever a checkpoint lands, whichever process wrote it.
With FastAPI the same loop is::

    @app.get("/jobs/{job}/events")
    async def events(job: str):
        async def stream():
            async for progress in ckpt.watch(repo, job):
                yield f"data: {json.dumps(progress.to_json())}\\n\\n"
        return StreamingResponse(stream(), media_type="text/event-stream")

and a WebSocket handler sends ``progress.to_json()`` in the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import shutil
import tempfile

import ckpt
from ckpt.pipeline.runner import open_store


async def sse_events(repo: ckpt.Repository, job: str, writer: asyncio.StreamWriter) -> None:
    """The endpoint: one SSE message per checkpoint until the job is done."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
    async for progress in ckpt.watch(repo, job, interval=0.05):
        writer.write(f"data: {json.dumps(progress.to_json())}\n\n".encode())
        await writer.drain()
    writer.close()


async def handle(
    repo: ckpt.Repository, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    request = (await reader.readline()).decode().split()
    while (await reader.readline()).strip():
        pass  # headers
    parts = request[1].strip("/").split("/") if len(request) > 1 else []
    if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "events":
        await sse_events(repo, parts[1], writer)
    else:
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        writer.close()


async def outline(input: str) -> ckpt.StageResult[list[str]]:
    await asyncio.sleep(0.1)
    return ckpt.StageResult([f"{input}: part {i}" for i in range(3)], cost=0.2, tokens=300)


async def draft(outline: list[str]) -> ckpt.StageResult[list[str]]:
    await asyncio.sleep(0.1)
    return ckpt.StageResult([p.upper() for p in outline], cost=0.9, tokens=1200)


async def review(draft: list[str]) -> ckpt.StageResult[str]:
    await asyncio.sleep(0.1)
    return ckpt.StageResult(" / ".join(draft), cost=0.4, tokens=500)


async def client(port: int, job: str) -> list[dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /jobs/{job}/events HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    events = []
    async for line in reader:
        if line.startswith(b"data: "):
            event = json.loads(line[6:])
            events.append(event)
            print(
                f"  event: {event['status']:<9} {event['completed_stages']}/"
                f"{event['total_stages']} ({event['percentage']:.0f}%) "
                f"latest={event['latest_stage']} "
                f"cost=${event['cost']:.2f}"
            )
    writer.close()
    return events


async def main_async(store: str, port: int) -> None:
    repo = open_store(store)  # opens the store, creating it if absent
    server = await asyncio.start_server(lambda r, w: handle(repo, r, w), "127.0.0.1", port)
    port = server.sockets[0].getsockname()[1]
    print(f"serving http://127.0.0.1:{port}/jobs/story/events")
    async with server:
        listening = asyncio.create_task(client(port, "story"))
        await asyncio.sleep(0.05)
        pipeline = ckpt.Pipeline([outline, draft, review], store=repo)
        result = await pipeline.run_async("story", "a lighthouse")
        events = await asyncio.wait_for(listening, timeout=60)
    assert events[-1]["status"] == "completed" and events[-1]["percentage"] == 100.0
    print(f"result: {result.output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store directory (default: a new temporary one)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    args = parser.parse_args()
    store = args.store or tempfile.mkdtemp(prefix="sse-")
    if args.store is None:  # a temporary store goes when the example ends
        atexit.register(shutil.rmtree, store, ignore_errors=True)
    asyncio.run(main_async(store, args.port))


if __name__ == "__main__":
    main()
