"""A small OpenAI-compatible chat endpoint over a local Hugging Face model.

    python -m rlvr.serve MODEL_DIR [--host 127.0.0.1] [--port 0]

Serves ``POST /v1/chat/completions`` (greedy or sampled, ``max_tokens``) and ``GET
/v1/models``, one request at a time, so that ``llm_judge`` can be pointed at a local model
(and its tests at the tiny one) with no network. Prints ``serving http://HOST:PORT/v1``
once it listens. Messages are rendered with the tokenizer's chat template when it has one,
else as ``role: content`` lines ending with ``assistant:``. Not a production server.
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


def render(tokenizer, messages: list[dict[str, str]]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


class ChatModel:
    def __init__(self, path: str, name: str):
        from transformers import AutoModelForCausalLM

        from rlvr.policy import load_tokenizer

        self.name = name
        self.tokenizer = load_tokenizer(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        self.lock = threading.Lock()

    @torch.no_grad()
    def reply(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float
    ) -> tuple[str, int, int]:
        encoded = self.tokenizer(render(self.tokenizer, messages), return_tensors="pt")
        with self.lock:
            out = self.model.generate(
                **encoded,
                max_new_tokens=max_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
        new = out[0, encoded["input_ids"].shape[1] :]
        return (
            self.tokenizer.decode(new, skip_special_tokens=True),
            encoded["input_ids"].shape[1],
            len(new),
        )


def make_handler(chat: ChatModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": chat.name, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                messages = [
                    {"role": str(m["role"]), "content": str(m["content"])}
                    for m in request["messages"]
                ]
            except (ValueError, KeyError, TypeError) as error:
                self._send(400, {"error": {"message": f"bad request: {error}"}})
                return
            if request.get("model", chat.name) != chat.name:
                self._send(404, {"error": {"message": f"unknown model {request.get('model')!r}"}})
                return
            text, prompt_tokens, completion_tokens = chat.reply(
                messages,
                int(request.get("max_tokens") or 64),
                float(request.get("temperature") or 0.0),
            )
            self._send(
                200,
                {
                    "id": f"chatcmpl-{time.time_ns()}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": chat.name,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )

        def log_message(
            self, format: str, *args
        ) -> None:  # quiet: one line per request is noise here
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rlvr.serve", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model", help="local model directory")
    parser.add_argument(
        "--name", default=None, help="model name clients send (default: the directory)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    chat = ChatModel(args.model, args.name or args.model)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(chat))
    print(f"serving http://{args.host}:{server.server_address[1]}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
