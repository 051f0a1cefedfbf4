# The queues module's own logic, with a mock provider.

mock_provider "aws" {}

variables {
  name_prefix = "bottlesync-test"
}

run "visibility_timeouts_and_redrive" {
  command = apply

  variables {
    lambda_timeout_seconds         = 600
    ecs_visibility_timeout_seconds = 240
    max_receive_count              = 7
  }

  assert {
    condition     = aws_sqs_queue.lambda.visibility_timeout_seconds == 3600
    error_message = "the Lambda queue's visibility timeout is 6x the Lambda timeout"
  }
  assert {
    condition     = aws_sqs_queue.ecs.visibility_timeout_seconds == 240 && output.ecs_visibility_timeout_seconds == 240
    error_message = "the ECS queue's visibility timeout is the variable the worker's BOTTLESYNC_VISIBILITY_TIMEOUT also gets"
  }
  assert {
    condition = alltrue([for q in [aws_sqs_queue.lambda, aws_sqs_queue.ecs] :
      jsondecode(q.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dlq.arn && jsondecode(q.redrive_policy).maxReceiveCount == 7
    ])
    error_message = "both work queues redrive to the DLQ after max_receive_count receives"
  }
  assert {
    condition = (
      jsondecode(aws_sqs_queue_redrive_allow_policy.dlq[0].redrive_allow_policy).redrivePermission == "byQueue" &&
      toset(jsondecode(aws_sqs_queue_redrive_allow_policy.dlq[0].redrive_allow_policy).sourceQueueArns) == toset([aws_sqs_queue.lambda.arn, aws_sqs_queue.ecs.arn])
    )
    error_message = "only the two work queues may use the DLQ"
  }
  assert {
    condition     = alltrue([for q in [aws_sqs_queue.lambda, aws_sqs_queue.ecs, aws_sqs_queue.dlq] : q.sqs_managed_sse_enabled == true])
    error_message = "SQS-managed SSE without a KMS key"
  }
  assert {
    condition     = aws_sqs_queue.lambda.message_retention_seconds == 345600 && aws_sqs_queue.dlq.message_retention_seconds == 1209600
    error_message = "work queues keep messages 4 days (the planner's queued marks), the DLQ 14"
  }
}

run "moto_switch_drops_the_redrive_allow_policy" {
  command = plan
  variables {
    enable_redrive_allow_policy = false
  }
  assert {
    condition     = length(aws_sqs_queue_redrive_allow_policy.dlq) == 0
    error_message = "enable_redrive_allow_policy = false removes the resource"
  }
}

run "kms_key_replaces_sqs_managed_sse" {
  command = plan
  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  }
  assert {
    condition     = alltrue([for q in [aws_sqs_queue.lambda, aws_sqs_queue.ecs, aws_sqs_queue.dlq] : q.kms_master_key_id == var.kms_key_arn])
    error_message = "a KMS key encrypts every queue"
  }
}

run "rejects_lambda_timeout_over_15_minutes" {
  command = plan
  variables {
    lambda_timeout_seconds = 901
  }
  expect_failures = [var.lambda_timeout_seconds]
}

run "rejects_zero_receives" {
  command = plan
  variables {
    max_receive_count = 0
  }
  expect_failures = [var.max_receive_count]
}

# The consumer gives a bottle up two receives before SQS dead-letters it: with
# 2 receives it would give up on the first, before any real attempt.
run "rejects_two_receives" {
  command = plan
  variables {
    max_receive_count = 2
  }
  expect_failures = [var.max_receive_count]
}

run "accepts_three_receives" {
  command = apply
  variables {
    max_receive_count = 3
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.ecs.redrive_policy).maxReceiveCount == 3
    error_message = "3 receives is the least allowed"
  }
}

run "rejects_short_ecs_visibility" {
  command = plan
  variables {
    ecs_visibility_timeout_seconds = 5
  }
  expect_failures = [var.ecs_visibility_timeout_seconds]
}

# terraform-aws-modules users expect `tags` on every resource that takes them.
run "tags_reach_the_resources" {
  command = plan
  variables {
    tags = { CostCenter = "platform" }
  }
  assert {
    condition     = alltrue([for r in [aws_sqs_queue.dlq.tags, aws_sqs_queue.lambda.tags, aws_sqs_queue.ecs.tags] : r == var.tags])
    error_message = "the module's resources carry var.tags"
  }
}
