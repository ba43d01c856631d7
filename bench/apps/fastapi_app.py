"""FastAPI JSON workload: GET /json."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/json")
async def json_view():
    return {"message": "Hello, World!"}
