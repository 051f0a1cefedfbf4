# What a customer-managed key (kms_key_arn) must allow beyond the roles' own
# IAM grants: the AWS services that write or read this stack's encrypted
# resources with their own identity. Without these, log groups fail to
# create, alarms and ECS events never reach the encrypted topic, the
# schedule's dead letters are lost, and every CDN request is 403. Output
# kms_key_policy_json gives the whole policy for the chosen features.

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition

  kms_statements = concat(
    [
      {
        # Key administration and use through IAM policies (the roles'
        # kms:Decrypt / GenerateDataKey grants rely on this delegation).
        Sid       = "AccountIamPolicies"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # The functions' and the ECS task's log groups are encrypted by
        # CloudWatch Logs itself, per log group; the policy must allow it
        # before the groups exist, so by name.
        Sid       = "CloudWatchLogsOfThisStack"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = [
              "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/lambda/${local.name}-*",
              "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/ecs/${local.ecs_cluster_name}/*",
            ]
          }
        }
      },
      {
        # CloudWatch alarms publish to the encrypted alarm topic.
        Sid       = "CloudWatchAlarmsToTheTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
      },
      {
        # EventBridge sends ECS task and placement failures to the topic, and
        # the schedule's failed deliveries to its encrypted dead-letter queue.
        Sid       = "EventBridgeToTheTopicAndDeadLetters"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
      },
    ],
    var.enable_cdn ? [{
      # CloudFront (origin access control) reads the SSE-KMS bottles, for
      # this distribution only.
      Sid       = "CloudFrontReadsTheMirror"
      Effect    = "Allow"
      Principal = { Service = "cloudfront.amazonaws.com" }
      Action    = ["kms:Decrypt"]
      Resource  = "*"
      Condition = { StringEquals = { "AWS:SourceArn" = module.cdn[0].distribution_arn } }
    }] : [],
  )
}
