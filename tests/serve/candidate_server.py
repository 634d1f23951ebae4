"""A loopback OpenAI-compatible candidate, run as its own process so a test can kill it mid-load.

``python candidate_server.py <port>`` answers every chat completion with ``"<model>: <last message>"``
(as the fake backend does), counting words as tokens.
"""

from __future__ import annotations

import sys
import time

import uvicorn
from fastapi import FastAPI
from fastapi import Request as HTTPRequest  # module level: FastAPI resolves annotations from globals

app = FastAPI()


@app.post("/v1/chat/completions")
async def chat(request: HTTPRequest) -> dict:
    body = await request.json()
    prompt = " ".join(m["content"] for m in body["messages"])
    text = f"{body['model']}: {body['messages'][-1]['content']}"
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": len(text.split()),
            "total_tokens": len(prompt.split()) + len(text.split()),
        },
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
