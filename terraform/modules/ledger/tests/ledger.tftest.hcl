# The ledger table matches what the code expects (core::dynamo_ledger).

mock_provider "aws" {}

variables {
  table_name = "bottlesync-test-ledger"
}

run "schema_the_code_expects" {
  command = plan

  assert {
    condition     = aws_dynamodb_table.ledger.hash_key == "pk" && aws_dynamodb_table.ledger.range_key == null
    error_message = "one string partition key pk, no sort key"
  }
  assert {
    condition     = [for a in aws_dynamodb_table.ledger.attribute : "${a.name}:${a.type}"] == ["pk:S"]
    error_message = "pk is a string"
  }
  assert {
    condition     = aws_dynamodb_table.ledger.billing_mode == "PAY_PER_REQUEST"
    error_message = "on-demand"
  }
  assert {
    condition     = one(aws_dynamodb_table.ledger.ttl).attribute_name == "expires_at" && one(aws_dynamodb_table.ledger.ttl).enabled
    error_message = "TTL on expires_at (count markers)"
  }
  assert {
    condition     = one(aws_dynamodb_table.ledger.point_in_time_recovery).enabled && one(aws_dynamodb_table.ledger.server_side_encryption).enabled
    error_message = "PITR and SSE"
  }
  assert {
    condition     = aws_dynamodb_table.ledger.deletion_protection_enabled
    error_message = "deletion protection by default"
  }
}

run "rejects_bad_table_name" {
  command = plan
  variables {
    table_name = "no spaces"
  }
  expect_failures = [var.table_name]
}

# terraform-aws-modules users expect `tags` on every resource that takes them.
run "tags_reach_the_resources" {
  command = plan
  variables {
    tags = { CostCenter = "platform" }
  }
  assert {
    condition     = aws_dynamodb_table.ledger.tags == var.tags
    error_message = "the module's resources carry var.tags"
  }
}
