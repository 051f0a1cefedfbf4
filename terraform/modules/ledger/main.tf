# The fleet's ledger: bottle claims and states, run records and per-run
# count markers, all under one string partition key `pk`. Count markers carry
# `expires_at` (epoch seconds), which DynamoDB's TTL deletes.

resource "aws_dynamodb_table" "ledger" {
  #checkov:skip=CKV_AWS_119:Always encrypted at rest; with the AWS-managed key by default (no KMS key to administer or pay for), with a customer-managed key when kms_key_arn is given.
  name                        = var.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
  tags = var.tags
}
