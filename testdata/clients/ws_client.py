"""A real WebSocket client (Python's websockets, from Debian) for
asgi_ws_test.go. Usage: ws_client.py URL. Prints one JSON object with what
it saw, for three exchanges against testdata/asgi_ws_record.py:

close_echo    the app closes with 4001; websockets answers with the same
              code, and reports the code the server sent
client_close  the client closes with 4100
bad_utf8      a text frame that is not UTF-8: the server must close 1007
"""

import asyncio
import json
import sys

import websockets
from websockets.frames import Opcode


async def main(url):
    out = {}
    async with websockets.connect(url + "/close-echo?close=4001") as ws:
        try:
            await ws.recv()
        except websockets.ConnectionClosed as e:
            out["close_echo"] = e.rcvd.code if e.rcvd else None
    async with websockets.connect(url + "/client-close") as ws:
        await ws.send("hi")
        out["client_close_echo"] = await ws.recv()
        await ws.close(code=4100, reason="bye")
    async with websockets.connect(url + "/bad-utf8") as ws:
        await ws.write_frame(True, Opcode.TEXT, b"\xff\xfe")
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed as e:
            out["bad_utf8"] = e.rcvd.code if e.rcvd else None
    print(json.dumps(out))


asyncio.run(main(sys.argv[1]))
