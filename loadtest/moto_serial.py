"""moto_server answering one request at a time.

moto's DynamoDB checks a condition and applies the write in separate steps
on per-request threads, so two concurrent conditional writes can both win
(and concurrent TransactWriteItems can fail with HTTP 500). Real DynamoDB is
atomic; the tests serve DynamoDB from this serial server to get that.
Never use it for SQS: a long poll would block every other request.

Also: moto backs up every table a transaction touches with a deep copy of
the whole table, so each TransactWriteItems costs time and memory in
proportion to the table (a 2,000-bottle load run reached 8 GB and under one
transaction a second). Here the backup copies only the items the
transaction names, which is all a rollback needs; one request at a time
makes that safe.
"""
import copy
import sys
import types

from moto import server
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from werkzeug import serving

_run_simple = serving.run_simple
server.run_simple = lambda *a, **k: _run_simple(*a, **{**k, "threaded": False})

# table name -> hash key values named by the transaction being applied
_touched: dict[str, list[DynamoType]] = {}


def _backup(obj, memo=None):
    if isinstance(obj, Table):
        backup = copy.copy(obj)
        backup.items = copy.copy(obj.items)
        for hash_value in _touched.get(obj.name, ()):
            if hash_value in obj.items:
                backup.items[hash_value] = copy.deepcopy(obj.items[hash_value])
        return backup
    return copy.deepcopy(obj, memo)


_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_with_item_backups(self, transact_items):
    _touched.clear()
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = self.tables.get(op.get("TableName"))
        if table is None:
            continue
        key = op.get("Key") or op.get("Item") or {}
        if table.hash_key_attr in key:
            _touched.setdefault(table.name, []).append(DynamoType(key[table.hash_key_attr]))
    try:
        return _transact_write_items(self, transact_items)
    finally:
        _touched.clear()


dynamodb_models.copy = types.SimpleNamespace(deepcopy=_backup, copy=copy.copy)
dynamodb_models.DynamoDBBackend.transact_write_items = _transact_with_item_backups
server.main(sys.argv[1:])
