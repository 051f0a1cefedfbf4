# The Lambda queue (small runs), the ECS queue (large runs) and their
# shared dead-letter queue.

locals {
  lambda_visibility_timeout = 6 * var.lambda_timeout_seconds
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
  # SQS-managed SSE unless a KMS key is given.
  sqs_managed_sse = var.kms_key_arn == null
}

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.name_prefix}-dlq"
  message_retention_seconds         = var.dlq_message_retention_seconds
  receive_wait_time_seconds         = var.receive_wait_time_seconds
  sqs_managed_sse_enabled           = local.sqs_managed_sse ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  tags                              = var.tags
}

resource "aws_sqs_queue" "lambda" {
  name                              = "${var.name_prefix}-work"
  visibility_timeout_seconds        = local.lambda_visibility_timeout
  message_retention_seconds         = var.message_retention_seconds
  receive_wait_time_seconds         = var.receive_wait_time_seconds
  redrive_policy                    = local.redrive_policy
  sqs_managed_sse_enabled           = local.sqs_managed_sse ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  tags                              = var.tags
}

resource "aws_sqs_queue" "ecs" {
  name                              = "${var.name_prefix}-work-large"
  visibility_timeout_seconds        = var.ecs_visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  receive_wait_time_seconds         = var.receive_wait_time_seconds
  redrive_policy                    = local.redrive_policy
  sqs_managed_sse_enabled           = local.sqs_managed_sse ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  tags                              = var.tags
}

# Only the two work queues may use the DLQ (and be its redrive destination).
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  count     = var.enable_redrive_allow_policy ? 1 : 0
  queue_url = aws_sqs_queue.dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.lambda.arn, aws_sqs_queue.ecs.arn]
  })
}
