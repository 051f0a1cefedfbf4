"""A stand-in for the AWS Lambda Runtime API, for one invocation.

Serves the event in EVENT_FILE to the first `GET /2018-06-01/runtime/invocation/next`
with a deadline DEADLINE_SECONDS from then (the `Lambda-Runtime-Deadline-Ms`
header the runtime client turns into the context's deadline), holds every
later `next` (Lambda freezes an idle function), and writes what the function
answers (`/response`, `/error`, `/runtime/init/error`) to OUT_FILE as
{"kind": ..., "body": ...}. The protocol as documented in
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html.

    lambda_runtime.py PORT EVENT_FILE DEADLINE_SECONDS FUNCTION_ARN OUT_FILE
"""

import http.server
import json
import sys
import threading
import time
import uuid

port, event_file, deadline_seconds, function_arn, out_file = sys.argv[1:6]
served = threading.Event()
request_id = str(uuid.uuid4())


def answer(kind, body):
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        parsed = body.decode("utf-8", "replace")
    with open(out_file, "w") as out:
        json.dump({"kind": kind, "request_id": request_id, "body": parsed}, out)


class Runtime(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path != "/2018-06-01/runtime/invocation/next":
            return self.reply(404, b'{"errorType":"NotFound"}')
        if served.is_set():
            time.sleep(3600)  # frozen until killed
            return
        served.set()
        event = open(event_file, "rb").read()
        deadline_ms = int((time.time() + float(deadline_seconds)) * 1000)
        self.reply(200, event, {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": function_arn,
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
        })

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        prefix = f"/2018-06-01/runtime/invocation/{request_id}/"
        if self.path == prefix + "response":
            answer("response", body)
        elif self.path == prefix + "error":
            answer("error", body)
        elif self.path == "/2018-06-01/runtime/init/error":
            answer("init_error", body)
        else:
            return self.reply(404, b'{"errorType":"NotFound"}')
        self.reply(202, b'{"status":"OK"}')

    def reply(self, status, body, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Runtime).serve_forever()
