"""A webhook receiver for hoist's e2e tests: every request is checked by libraries hoist did not
write, and recorded as one JSON line.

- Standard Webhooks: `standardwebhooks.Webhook(secret).verify(body, headers)` (PyPI
  `standardwebhooks`), when the request carries `webhook-signature`.
- CloudEvents: `from_http_event(HTTPMessage(headers, body))` (PyPI `cloudevents` 2.x), when it
  carries `ce-` headers.
- Slack: `slack_sdk.models.blocks.Block.parse_all` and `validate_json` (PyPI `slack_sdk`), for
  requests to a path starting `/slack`.
- It deduplicates on `webhook-id`, as the spec asks receivers to: a repeated id is recorded with
  `"duplicate": true` and answered 200 without being "accepted" again.

Usage: hook_receiver.py PORT_FILE LOG_FILE [--secret whsec_...]... [--plan 500,500,200] [--retry-after N]
       [--port N]
The plan is the statuses answered to the first requests, in order; 200 after it. The port it
listens on (127.0.0.1, chosen by the OS) is written to PORT_FILE once it is listening.
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("port_file")
parser.add_argument("log_file")
parser.add_argument("--secret", action="append", default=[])
parser.add_argument("--plan", default="")
parser.add_argument("--retry-after")
parser.add_argument("--port", type=int, default=0)
args = parser.parse_args()

plan = [int(s) for s in args.plan.split(",") if s]
lock = threading.Lock()
seen = set()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def handle_one(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }
        if "webhook-signature" in headers and args.secret:
            from standardwebhooks import Webhook

            # Each secret given is tried on its own: during a rotation both must verify.
            record["verified_by"] = []
            for i, secret in enumerate(args.secret):
                try:
                    Webhook(secret).verify(body, headers)
                    record["verified_by"].append(i)
                except Exception as e:  # the library's verdict, recorded
                    record["verify_error"] = str(e)
            record["verified"] = bool(record["verified_by"])
        if any(k.startswith("ce-") for k in headers):
            from cloudevents.core.bindings.http import HTTPMessage, from_http_event

            try:
                event = from_http_event(HTTPMessage(headers=headers, body=body))
                record["cloudevent"] = {
                    "id": event.get_id(),
                    "type": event.get_type(),
                    "source": event.get_source(),
                    "specversion": event.get_specversion(),
                    "subject": event.get_subject(),
                }
            except Exception as e:
                record["cloudevent_error"] = str(e)
        if self.path.startswith("/slack"):
            # Slack's own SDK parses and validates the Block Kit message.
            from slack_sdk.models.blocks import Block

            try:
                message = json.loads(body)
                blocks = Block.parse_all(message["blocks"])
                for block in blocks:
                    block.validate_json()
                record["slack"] = {"text": message["text"], "blocks": [b.type for b in blocks]}
            except Exception as e:
                record["slack_error"] = repr(e)
        with lock:
            status = plan.pop(0) if plan else 200
            webhook_id = headers.get("webhook-id")
            record["status"] = status
            if status == 200 and webhook_id is not None:
                record["duplicate"] = webhook_id in seen
                seen.add(webhook_id)
            with open(args.log_file, "a") as log:
                log.write(json.dumps(record) + "\n")
        self.send_response(status)
        if status == 429 and args.retry_after:
            self.send_header("Retry-After", args.retry_after)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_POST = handle_one
    do_PUT = handle_one


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os

os.rename(args.port_file + ".tmp", args.port_file)
server.serve_forever()
