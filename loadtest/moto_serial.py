"""moto_server answering one request at a time.

moto's DynamoDB checks a condition and applies the write in separate steps
on per-request threads, so two concurrent conditional writes can both win
(and concurrent TransactWriteItems can fail with HTTP 500). Real DynamoDB is
atomic; the tests serve DynamoDB from this serial server to get that.
Never use it for SQS: a long poll would block every other request.
"""
import sys

from moto import server
from werkzeug import serving

_run_simple = serving.run_simple
server.run_simple = lambda *a, **k: _run_simple(*a, **{**k, "threaded": False})
server.main(sys.argv[1:])
