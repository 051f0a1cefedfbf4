# One role per function and task, each statement scoped to the ARNs it needs.
# Policies are built with jsonencode (not data sources) so that `terraform
# test` can check them with a mock provider.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition

  # The worker tasks (task protection is granted per task ARN).
  ecs_tasks_arn = "arn:${local.partition}:ecs:${local.region}:${local.account}:task/${coalesce(var.ecs_cluster_name, "*")}/*"

  objects_arn = var.mirror_prefix == "" ? "${var.bucket_arn}/*" : "${var.bucket_arn}/${var.mirror_prefix}/*"

  # ------------------------------------------------ shared by all workers ----
  data_plane_statements = concat(
    [
      {
        Sid    = "MirrorObjects"
        Effect = "Allow"
        Action = [
          "s3:GetObject",
          "s3:PutObject",
          # A dated bottle is written with its archive tag (x-amz-tagging on
          # PutObject and CreateMultipartUpload), which the storage module's
          # archive rule expires: S3 authorises that tag as PutObjectTagging.
          "s3:PutObjectTagging",
          "s3:DeleteObject",
          "s3:AbortMultipartUpload",
          "s3:ListMultipartUploadParts",
        ]
        Resource = [local.objects_arn]
      },
      # HeadBucket (the startup check) and ListObjectsV2 are both s3:ListBucket;
      # listing is limited to the mirror prefix, HeadBucket has none.
      merge(
        {
          Sid      = "MirrorBucketList"
          Effect   = "Allow"
          Action   = ["s3:ListBucket"]
          Resource = [var.bucket_arn]
        },
        var.mirror_prefix == "" ? {} : {
          Condition = { StringLikeIfExists = { "s3:prefix" = [var.mirror_prefix, "${var.mirror_prefix}/*"] } }
        },
      ),
      {
        Sid      = "MirrorMultipartUploads"
        Effect   = "Allow"
        Action   = ["s3:ListBucketMultipartUploads"]
        Resource = [var.bucket_arn]
      },
      {
        # TransactWriteItems is authorised per item action (Put, Update,
        # ConditionCheck); a run's counters are read with BatchGetItem
        # (every finish, resume and stalled-run reconcile).
        Sid    = "Ledger"
        Effect = "Allow"
        Action = [
          "dynamodb:GetItem",
          "dynamodb:BatchGetItem",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:DeleteItem",
          "dynamodb:ConditionCheckItem",
          "dynamodb:Scan",
        ]
        Resource = [var.ledger_table_arn]
      },
      {
        # Refused messages and bottles counted as failed are moved to the DLQ.
        Sid      = "DeadLetterQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
        Resource = [var.dlq_arn]
      },
    ],
    var.slack_secret_arn == null ? [] : [{
      Sid      = "SlackWebhookSecret"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = [var.slack_secret_arn]
    }],
    length(var.kms_key_arns) == 0 ? [] : [{
      Sid      = "DataKeys"
      Effect   = "Allow"
      Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
      Resource = var.kms_key_arns
    }],
  )

  # X-Ray accepts no resource-level permissions: "*" is the only possible resource.
  xray_statements = var.enable_xray ? [{
    Sid      = "XRayTraces"
    Effect   = "Allow"
    Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    Resource = ["*"]
  }] : []

  consumer_actions = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:SendMessage",
  ]

  log_actions = ["logs:CreateLogStream", "logs:PutLogEvents"]

  # ----------------------------------------------------------- planner ----
  planner_statements = concat(
    local.data_plane_statements,
    local.xray_statements,
    [
      {
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = local.log_actions
        Resource = ["${var.planner_log_group_arn}:*"]
      },
      {
        Sid      = "EnqueueBottles"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
        Resource = [var.lambda_queue_arn, var.ecs_queue_arn]
      },
      {
        # The scheduled reconcile ({"kind": "reconcile"}) looks for the
        # bottles of a stalled run in the DLQ: it receives them and hides
        # them again (it counts them; `bottlesync dlq replay` moves them).
        Sid      = "ReconcileDeadLetters"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
        Resource = [var.dlq_arn]
      },
      {
        # A run routed to ECS wakes the worker service from zero tasks.
        Sid      = "WakeEcsWorkers"
        Effect   = "Allow"
        Action   = ["ecs:DescribeServices", "ecs:UpdateService"]
        Resource = [var.ecs_service_arn]
      },
    ],
    var.planner_dead_letter_arn == null ? [] : [{
      # Lambda sends failed asynchronous (scheduled) invocations here with the function's role.
      Sid      = "AsyncInvokeDeadLetters"
      Effect   = "Allow"
      Action   = ["sqs:SendMessage"]
      Resource = [var.planner_dead_letter_arn]
    }],
    var.external_hash_file_object_arn == null ? [] : [{
      Sid      = "ExternalHashFile"
      Effect   = "Allow"
      Action   = ["s3:GetObject"]
      Resource = [var.external_hash_file_object_arn]
    }],
  )

  # ----------------------------------------------------- worker Lambda ----
  worker_statements = concat(
    local.data_plane_statements,
    local.xray_statements,
    [
      {
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = local.log_actions
        Resource = ["${var.worker_log_group_arn}:*"]
      },
      {
        # The event source mapping receives and deletes with this role; the
        # worker itself delays retries and re-queues claim conflicts.
        Sid      = "ConsumeLambdaQueue"
        Effect   = "Allow"
        Action   = local.consumer_actions
        Resource = [var.lambda_queue_arn]
      },
      {
        # Near its deadline the worker Lambda hands a slow bottle to the ECS
        # queue (BOTTLESYNC_LARGE_QUEUE_URL, worker/src/consumer/outcome.rs).
        Sid      = "HandOffToEcsQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [var.ecs_queue_arn]
      },
    ],
  )

  # ---------------------------------------------------------- ECS task ----
  ecs_task_statements = concat(
    local.data_plane_statements,
    [
      {
        Sid      = "ConsumeEcsQueue"
        Effect   = "Allow"
        Action   = local.consumer_actions
        Resource = [var.ecs_queue_arn]
      },
      {
        # Scale-in protection while bottles are in flight: the ECS agent
        # (worker/src/protection.rs) calls these with the task role, and ECS
        # refuses protection without them.
        Sid      = "TaskScaleInProtection"
        Effect   = "Allow"
        Action   = ["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"]
        Resource = [local.ecs_tasks_arn]
      },
    ],
  )

  # ---------------------------------------------------------- operator ----
  # What an operator's shell needs for the CLI's fleet commands: `status`,
  # `dlq list`, `dlq replay` (a new run: ledger, Slack, both queues, the
  # ECS wake-up), and `plan`/`reconcile` by hand. A managed policy to attach
  # to the operators' own role or group; no Lambda or log permissions.
  operator_statements = concat(
    local.data_plane_statements,
    [
      {
        Sid      = "EnqueueBottles"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
        Resource = [var.lambda_queue_arn, var.ecs_queue_arn]
      },
      {
        # `dlq list` receives and hides the letters; `dlq replay` deletes
        # each once its bottle is sent back to work.
        Sid      = "ReplayDeadLetters"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = [var.dlq_arn]
      },
      {
        Sid      = "WakeEcsWorkers"
        Effect   = "Allow"
        Action   = ["ecs:DescribeServices", "ecs:UpdateService"]
        Resource = [var.ecs_service_arn]
      },
    ],
  )

  # ------------------------------------------------ ECS task execution ----
  ecs_execution_statements = concat(
    [
      {
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = local.log_actions
        Resource = ["${var.ecs_log_group_arn}:*"]
      },
    ],
    length(var.ecr_repository_arns) == 0 ? [] : [
      {
        # ecr:GetAuthorizationToken accepts no resource-level permissions: "*" is the only possible resource.
        Sid      = "EcrLogin"
        Effect   = "Allow"
        Action   = ["ecr:GetAuthorizationToken"]
        Resource = ["*"]
      },
      {
        Sid      = "EcrPull"
        Effect   = "Allow"
        Action   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
        Resource = var.ecr_repository_arns
      },
    ],
  )

  policies = {
    planner       = { Version = "2012-10-17", Statement = local.planner_statements }
    worker        = { Version = "2012-10-17", Statement = local.worker_statements }
    ecs-task      = { Version = "2012-10-17", Statement = local.ecs_task_statements }
    ecs-execution = { Version = "2012-10-17", Statement = local.ecs_execution_statements }
    operator      = { Version = "2012-10-17", Statement = local.operator_statements }
  }

  lambda_trust = {
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
    }]
  }

  ecs_trust = {
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account }
        ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${local.region}:${local.account}:*" }
      }
    }]
  }

  roles = {
    planner       = { trust = local.lambda_trust, description = "bottlesync planner Lambda" }
    worker        = { trust = local.lambda_trust, description = "bottlesync worker Lambda" }
    ecs-task      = { trust = local.ecs_trust, description = "bottlesync ECS worker task" }
    ecs-execution = { trust = local.ecs_trust, description = "ECS agent for the bottlesync worker task (image pull, logs)" }
  }
}

resource "aws_iam_role" "this" {
  for_each             = local.roles
  name                 = "${var.name_prefix}-${each.key}"
  description          = each.value.description
  assume_role_policy   = jsonencode(each.value.trust)
  max_session_duration = 3600
  # Organisations that let teams create roles only under a boundary or a path.
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  tags                 = var.tags
}

# One resource per policy (not for_each): each role's ARN output waits for
# its own policy only, so that nothing runs with a role before it may act,
# without tying the ECS task to the planner's policy (which names the ECS service).
resource "aws_iam_role_policy" "planner" {
  name   = "bottlesync"
  role   = aws_iam_role.this["planner"].id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.planner_statements })
}

resource "aws_iam_role_policy" "worker" {
  name   = "bottlesync"
  role   = aws_iam_role.this["worker"].id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.worker_statements })
}

resource "aws_iam_role_policy" "ecs_task" {
  name   = "bottlesync"
  role   = aws_iam_role.this["ecs-task"].id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.ecs_task_statements })
}

resource "aws_iam_role_policy" "ecs_execution" {
  name   = "bottlesync"
  role   = aws_iam_role.this["ecs-execution"].id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.ecs_execution_statements })
}

resource "aws_iam_policy" "operator" {
  name        = "${var.name_prefix}-operator"
  description = "bottlesync operators: status, dlq list/replay, plan and reconcile from a shell"
  path        = var.role_path
  policy      = jsonencode({ Version = "2012-10-17", Statement = local.operator_statements })
  tags        = var.tags
}
