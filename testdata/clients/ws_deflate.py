"""Python's websockets (Debian) as a client offering permessage-deflate,
as browsers do, against testdata/asgi_ws_record.py. Usage: ws_deflate.py
URL. Prints JSON: the extension the server accepted and whether messages
of several sizes came back whole."""

import asyncio
import json
import sys

import websockets


async def main(url):
    out = {}
    async with websockets.connect(url + "/deflate", max_size=2**22) as ws:
        out["extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions")
        ok = []
        for msg in ["x", "hello " * 2000, b"\x00\x01" * 50000, "caf\u00e9 " * 300]:
            await ws.send(msg)
            ok.append(await ws.recv() == msg)
        out["round_trips"] = ok
    print(json.dumps(out))


asyncio.run(main(sys.argv[1]))
