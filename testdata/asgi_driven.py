"""An ASGI app (standard library only) for the hazards of an event loop
that request goroutines drive (asgi_driven_test.go): timers, a queue served
by a task started in lifespan, executor threads, context variables, the
current task, async generators left unfinished, I/O on a socket the app
opens, a step that blocks with the GIL released, a task that never sleeps,
backpressure and disconnects."""

import asyncio
import contextvars
import json
import threading
import time
from urllib.parse import parse_qs

request_id = contextvars.ContextVar("request_id", default=None)

state = {
    "queue": None,
    "worker": None,
    "spinner": None,
    "spins": 0,
    "agen_closed": 0,
    "disconnects": 0,
    "sent": 0,
    "loop": None,
}


async def worker(queue):
    """A background task started in lifespan: doubles what it is given."""
    while True:
        item, fut = await queue.get()
        await asyncio.sleep(0.001)
        fut.set_result(item * 2)


async def spin():
    while True:
        await asyncio.sleep(0)
        state["spins"] += 1


async def abandoned():
    try:
        yield 1
        yield 2
    finally:
        # Needs the loop: without the loop's async-generator hooks, the
        # garbage collector closes the generator synchronously and this
        # await makes it "ignore GeneratorExit".
        await asyncio.sleep(0)
        state["agen_closed"] += 1


async def reply(send, obj, status=200):
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            state["loop"] = asyncio.get_running_loop()
            state["queue"] = asyncio.Queue()
            state["worker"] = asyncio.get_running_loop().create_task(worker(state["queue"]))
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            state["worker"].cancel()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    loop = asyncio.get_running_loop()

    if path == "/hello":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hello"})

    elif path == "/sleep":
        seconds = float(query.get("ms", "50")) / 1000
        start = time.monotonic()
        await asyncio.sleep(seconds)
        await reply(send, {"elapsed": time.monotonic() - start})

    elif path == "/queue":
        futs = []
        for i in range(int(query.get("n", "5"))):
            fut = loop.create_future()
            await state["queue"].put((i, fut))
            futs.append(fut)
        await reply(send, {"results": list(await asyncio.gather(*futs))})

    elif path == "/executor":
        def blocking():
            time.sleep(0.01)
            return threading.get_ident()

        a = await loop.run_in_executor(None, blocking)
        b = await asyncio.to_thread(blocking)
        await reply(send, {"executor": a, "to_thread": b, "here": threading.get_ident()})

    elif path == "/contextvar":
        before = request_id.get()
        request_id.set(query["id"])
        await asyncio.sleep(float(query.get("ms", "5")) / 1000)
        await reply(send, {"before": before, "after": request_id.get()})

    elif path == "/task":
        first = asyncio.current_task()
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        second = asyncio.current_task()
        await reply(send, {
            "task": first is not None and first is second and not first.done(),
            "loop": asyncio.get_running_loop() is state["loop"],
            "all_tasks": first in asyncio.all_tasks(),
        })

    elif path == "/agen":
        gen = abandoned()
        await gen.__anext__()
        del gen  # unfinished: finalized through the loop's hooks
        await reply(send, {"ok": True})

    elif path == "/gil":
        time.sleep(float(query.get("ms", "50")) / 1000)  # blocks the loop; the GIL is released
        await reply(send, {"ok": True})

    elif path == "/spin":
        if query.get("stop"):
            if state["spinner"] is not None:
                state["spinner"].cancel()
                state["spinner"] = None
        elif state["spinner"] is None:
            state["spinner"] = loop.create_task(spin())
        await reply(send, {"spins": state["spins"]})

    elif path == "/db":
        reader, writer = await asyncio.open_connection("127.0.0.1", int(query["port"]))
        writer.write(b"ping\n")
        await writer.drain()
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        await reply(send, {"line": line.decode()})

    elif path == "/subprocess":
        # The child's pipes are the loop's I/O (the driver sees them); its
        # exit comes through a child watcher (a thread, or a pidfd).
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "sleep 0.02; echo out", stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        await reply(send, {"out": out.decode(), "code": proc.returncode})

    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(int(query.get("n", "3"))):
            await send({"type": "http.response.body", "body": b"chunk%d\n" % i, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})

    elif path == "/big":
        # 64 KiB chunks; send() waits while Go's queue for the client is full.
        chunk = b"x" * 65536
        n = int(query.get("n", "512"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(n * len(chunk)).encode())]})
        for i in range(n):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < n - 1})
            state["sent"] += len(chunk)

    elif path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"waiting\n", "more_body": True})
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                state["disconnects"] += 1
                return

    elif path == "/stats":
        await reply(send, {k: v for k, v in state.items() if isinstance(v, int)})

    else:
        await reply(send, {"error": "not found"}, status=404)
