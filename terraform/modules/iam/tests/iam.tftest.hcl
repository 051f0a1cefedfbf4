# Least privilege: every statement is scoped to the ARNs it needs.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

variables {
  name_prefix           = "bottlesync-test"
  bucket_arn            = "arn:aws:s3:::mirror"
  mirror_prefix         = "homebrew"
  ledger_table_arn      = "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"
  lambda_queue_arn      = "arn:aws:sqs:us-east-1:123456789012:work"
  ecs_queue_arn         = "arn:aws:sqs:us-east-1:123456789012:work-large"
  dlq_arn               = "arn:aws:sqs:us-east-1:123456789012:dlq"
  planner_log_group_arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/planner"
  worker_log_group_arn  = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/worker"
  ecs_log_group_arn     = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/worker"
  ecs_service_arn       = "arn:aws:ecs:us-east-1:123456789012:service/cluster/worker"
}

run "no_wildcard_resources" {
  command = plan

  assert {
    condition = alltrue(flatten([for role, policy in output.policies : [
      for s in policy.Statement : [for r in s.Resource : r != "*" && can(regex("^arn:aws:", r))]
    ]]))
    error_message = "without ECR and X-Ray, every resource is an ARN, never *"
  }
  assert {
    condition = alltrue(flatten([for role, policy in output.policies : [
      for s in policy.Statement : [for a in s.Action : !endswith(a, "*")]
    ]]))
    error_message = "no wildcard actions"
  }
}

run "data_plane_scoped_to_the_mirror" {
  command = plan

  assert {
    condition     = one([for s in output.policies.worker.Statement : s.Resource if s.Sid == "MirrorObjects"]) == ["arn:aws:s3:::mirror/homebrew/*"]
    error_message = "object access below the mirror prefix only"
  }
  assert {
    condition = toset(one([for s in output.policies.worker.Statement : s.Action if s.Sid == "MirrorObjects"])) == toset([
      "s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    ])
    error_message = "object actions: get, put (with the archive tag of dated bottles), delete, multipart"
  }
  assert {
    condition     = one([for s in output.policies.planner.Statement : s.Condition.StringLikeIfExists["s3:prefix"] if s.Sid == "MirrorBucketList"]) == ["homebrew", "homebrew/*"]
    error_message = "listing limited to the mirror prefix"
  }
  assert {
    condition = toset(one([for s in output.policies.ecs-task.Statement : s.Action if s.Sid == "Ledger"])) == toset([
      "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem", "dynamodb:Scan",
    ]) && one([for s in output.policies.ecs-task.Statement : s.Resource if s.Sid == "Ledger"]) == [var.ledger_table_arn]
    error_message = "ledger item actions (TransactWriteItems is authorised per item action) on the table only"
  }
  assert {
    condition = alltrue([for role in ["planner", "worker", "ecs-task"] :
      one([for s in output.policies[role].Statement : s.Resource if s.Sid == "DeadLetterQueue"]) == [var.dlq_arn]
    ])
    error_message = "every runtime role may move messages to the DLQ"
  }
  assert {
    condition     = length([for s in output.policies.ecs-execution.Statement : s if contains(["MirrorObjects", "Ledger"], s.Sid)]) == 0
    error_message = "the execution role gets no data access"
  }
}

run "queues_per_role" {
  command = plan

  assert {
    condition     = one([for s in output.policies.worker.Statement : s.Resource if s.Sid == "ConsumeLambdaQueue"]) == [var.lambda_queue_arn]
    error_message = "the worker Lambda consumes the Lambda queue only"
  }
  assert {
    condition     = one([for s in output.policies.ecs-task.Statement : s.Resource if s.Sid == "ConsumeEcsQueue"]) == [var.ecs_queue_arn]
    error_message = "the ECS task consumes the ECS queue only"
  }
  assert {
    condition     = one([for s in output.policies.planner.Statement : s.Action if s.Sid == "EnqueueBottles"]) == ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    error_message = "the planner only sends"
  }
  assert {
    condition = (
      one([for s in output.policies.planner.Statement : s.Resource if s.Sid == "WakeEcsWorkers"]) == [var.ecs_service_arn] &&
      one([for s in output.policies.planner.Statement : s.Action if s.Sid == "WakeEcsWorkers"]) == ["ecs:DescribeServices", "ecs:UpdateService"]
    )
    error_message = "the planner may wake the ECS service, and only that service"
  }
  assert {
    condition     = length([for s in output.policies.worker.Statement : s if s.Sid == "WakeEcsWorkers"]) == 0
    error_message = "workers cannot change the service"
  }
  assert {
    condition = (
      one([for s in output.policies.worker.Statement : s.Resource if s.Sid == "HandOffToEcsQueue"]) == [var.ecs_queue_arn] &&
      one([for s in output.policies.worker.Statement : s.Action if s.Sid == "HandOffToEcsQueue"]) == ["sqs:SendMessage"]
    )
    error_message = "the worker Lambda may hand a slow bottle to the ECS queue (send only)"
  }
  assert {
    condition     = alltrue([for role in ["planner", "worker", "ecs-task"] : contains(one([for s in output.policies[role].Statement : s.Action if s.Sid == "Ledger"]), "dynamodb:BatchGetItem")])
    error_message = "every ledger user reads run counters with BatchGetItem"
  }
  assert {
    condition     = one([for s in output.policies.planner.Statement : s.Resource if s.Sid == "Logs"]) == ["${var.planner_log_group_arn}:*"]
    error_message = "each function writes its own log group"
  }
}

run "optional_statements_are_off_by_default" {
  command = plan

  assert {
    condition = alltrue([for role, policy in output.policies : length([
      for s in policy.Statement : s if contains(["SlackWebhookSecret", "DataKeys", "ExternalHashFile", "AsyncInvokeDeadLetters", "EcrLogin", "EcrPull", "XRayTraces"], s.Sid)
    ]) == 0])
    error_message = "no secret, KMS, hash file, DLQ, ECR or X-Ray statements unless configured"
  }
}

run "optional_statements_when_configured" {
  command = plan

  variables {
    slack_secret_arn              = "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbCdEf"
    kms_key_arns                  = ["arn:aws:kms:us-east-1:123456789012:key/k"]
    external_hash_file_object_arn = "arn:aws:s3:::other-bucket/hashes/bottles_hash.json"
    planner_dead_letter_arn       = "arn:aws:sqs:us-east-1:123456789012:schedule-dlq"
    ecr_repository_arns           = ["arn:aws:ecr:us-east-1:123456789012:repository/bottlesync"]
    enable_xray                   = true
  }

  assert {
    condition = alltrue([for role in ["planner", "worker", "ecs-task"] :
      one([for s in output.policies[role].Statement : s.Resource if s.Sid == "SlackWebhookSecret"]) == [var.slack_secret_arn]
    ])
    error_message = "every runtime role reads the webhook secret, and only it"
  }
  assert {
    condition     = one([for s in output.policies.planner.Statement : s.Resource if s.Sid == "ExternalHashFile"]) == [var.external_hash_file_object_arn]
    error_message = "the planner reads the external hash file object only"
  }
  assert {
    condition     = length([for s in output.policies.worker.Statement : s if s.Sid == "ExternalHashFile"]) == 0
    error_message = "workers do not read the external hash file"
  }
  assert {
    condition     = one([for s in output.policies.ecs-execution.Statement : s.Resource if s.Sid == "EcrPull"]) == var.ecr_repository_arns
    error_message = "image pulls from the given repository only"
  }
  assert {
    # The only two "*": actions AWS offers no resource-level permissions for.
    condition     = toset(flatten([for role, policy in output.policies : [for s in policy.Statement : s.Sid if contains(s.Resource, "*")]])) == toset(["EcrLogin", "XRayTraces"])
    error_message = "\"*\" only for ecr:GetAuthorizationToken and X-Ray"
  }
}

run "whole_bucket_without_prefix" {
  command = plan
  variables {
    mirror_prefix = ""
  }
  assert {
    condition     = one([for s in output.policies.worker.Statement : s.Resource if s.Sid == "MirrorObjects"]) == ["arn:aws:s3:::mirror/*"]
    error_message = "no prefix: the whole bucket"
  }
  assert {
    condition     = one([for s in output.policies.worker.Statement : lookup(s, "Condition", null) if s.Sid == "MirrorBucketList"]) == null
    error_message = "no prefix: no listing condition"
  }
}

run "rejects_bucket_that_is_not_an_arn" {
  command = plan
  variables {
    bucket_arn = "mirror"
  }
  expect_failures = [var.bucket_arn]
}

run "task_role_may_protect_its_tasks_from_scale_in" {
  command = plan
  variables {
    ecs_cluster_name = "bottlesync-test"
  }
  assert {
    condition     = toset(one([for s in output.policies.ecs-task.Statement : s.Action if s.Sid == "TaskScaleInProtection"])) == toset(["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"])
    error_message = "the ECS task role may get and update task scale-in protection (ECS refuses protection without them)"
  }
  assert {
    condition     = one([for s in output.policies.ecs-task.Statement : s.Resource if s.Sid == "TaskScaleInProtection"]) == ["arn:aws:ecs:us-east-1:123456789012:task/bottlesync-test/*"]
    error_message = "protection on the worker cluster's tasks only"
  }
  assert {
    condition     = alltrue([for role in ["planner", "worker", "ecs-execution"] : length([for s in output.policies[role].Statement : s if s.Sid == "TaskScaleInProtection"]) == 0])
    error_message = "only the task role protects tasks"
  }
}

run "planner_may_reconcile_stalled_runs" {
  command = plan
  assert {
    condition = (
      toset(one([for s in output.policies.planner.Statement : s.Action if s.Sid == "ReconcileDeadLetters"])) == toset(["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]) &&
      one([for s in output.policies.planner.Statement : s.Resource if s.Sid == "ReconcileDeadLetters"]) == [var.dlq_arn]
    )
    error_message = "the reconcile receives and hides DLQ messages, on the DLQ only"
  }
  assert {
    condition     = toset(one([for s in output.policies.planner.Statement : s.Resource if s.Sid == "EnqueueBottles"])) == toset([var.lambda_queue_arn, var.ecs_queue_arn])
    error_message = "the reconcile re-sends lost bottles to either work queue"
  }
  assert {
    # Run manifests: <prefix>/.bottlesync/runs/<run id>.json.
    condition = (
      anytrue([for r in one([for s in output.policies.planner.Statement : s.Resource if s.Sid == "MirrorObjects"]) : strcontains("${r}", "*") && startswith("arn:aws:s3:::mirror/homebrew/.bottlesync/runs/run.json", trimsuffix(r, "*"))]) &&
      toset(["s3:GetObject", "s3:PutObject"]) == setintersection(toset(one([for s in output.policies.planner.Statement : s.Action if s.Sid == "MirrorObjects"])), toset(["s3:GetObject", "s3:PutObject"]))
    )
    error_message = "the planner reads and writes run manifests under <prefix>/.bottlesync/runs/"
  }
  assert {
    condition     = length([for s in output.policies.worker.Statement : s if s.Sid == "ReconcileDeadLetters"]) == 0
    error_message = "only the planner reconciles"
  }
}

run "roles_under_an_organisations_path_and_boundary" {
  command = plan
  variables {
    role_path                 = "/teams/platform/"
    role_permissions_boundary = "arn:aws:iam::123456789012:policy/team-boundary"
  }
  assert {
    condition = alltrue([for r in aws_iam_role.this :
      r.path == "/teams/platform/" && r.permissions_boundary == "arn:aws:iam::123456789012:policy/team-boundary"
    ])
    error_message = "every role gets the path and the boundary"
  }
}

run "roles_at_the_root_path_without_a_boundary_by_default" {
  command = plan
  assert {
    condition     = alltrue([for r in aws_iam_role.this : r.path == "/" && r.permissions_boundary == null])
    error_message = "path / and no boundary unless asked"
  }
}

run "rejects_a_path_without_slashes" {
  command = plan
  variables {
    role_path = "teams"
  }
  expect_failures = [var.role_path]
}

run "rejects_a_boundary_that_is_not_a_policy" {
  command = plan
  variables {
    role_permissions_boundary = "arn:aws:iam::123456789012:role/not-a-policy"
  }
  expect_failures = [var.role_permissions_boundary]
}

# terraform-aws-modules users expect `tags` on every resource that takes them.
run "tags_reach_the_resources" {
  command = plan
  variables {
    tags = { CostCenter = "platform" }
  }
  assert {
    condition     = alltrue([for r in aws_iam_role.this : r.tags == var.tags])
    error_message = "the module's resources carry var.tags"
  }
}

run "operator_policy_replays_dead_letters_and_nothing_more" {
  command = plan

  assert {
    condition = (
      toset(one([for s in output.policies.operator.Statement : s.Action if s.Sid == "ReplayDeadLetters"])) == toset([
        "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
      ]) &&
      one([for s in output.policies.operator.Statement : s.Resource if s.Sid == "ReplayDeadLetters"]) == [var.dlq_arn] &&
      one([for s in output.policies.operator.Statement : s.Resource if s.Sid == "EnqueueBottles"]) == [var.lambda_queue_arn, var.ecs_queue_arn]
    )
    error_message = "operators consume the DLQ and send to both queues (dlq replay), each by ARN"
  }
  assert {
    condition     = length([for s in output.policies.operator.Statement : s if contains(["Logs", "XRayTraces", "ConsumeLambdaQueue", "ConsumeEcsQueue", "TaskScaleInProtection"], s.Sid)]) == 0
    error_message = "the operator policy grants no function's or task's own permissions"
  }
  assert {
    condition     = aws_iam_policy.operator.name == "${var.name_prefix}-operator"
    error_message = "the operator policy is named after the stack"
  }
}
