output "bucket" {
  description = "The mirror bucket (BOTTLESYNC_BUCKET)."
  value       = module.storage.bucket_id
}

output "mirror_prefix" {
  description = "Key prefix of the mirror (BOTTLESYNC_PREFIX)."
  value       = local.mirror_prefix
}

output "mirror_url" {
  description = "Where the mirror lives."
  value       = local.mirror_prefix == "" ? "s3://${module.storage.bucket_id}" : "s3://${module.storage.bucket_id}/${local.mirror_prefix}"
}

output "ledger_table" {
  description = "The ledger table (BOTTLESYNC_LEDGER_TABLE)."
  value       = module.ledger.table_name
}

output "lambda_queue_url" {
  description = "The Lambda queue (BOTTLESYNC_QUEUE_URL)."
  value       = module.queues.lambda_queue_url
}

output "ecs_queue_url" {
  description = "The ECS queue (BOTTLESYNC_LARGE_QUEUE_URL)."
  value       = module.queues.ecs_queue_url
}

output "dlq_url" {
  description = "The work queues' DLQ (BOTTLESYNC_DLQ_URL)."
  value       = module.queues.dlq_url
}

output "schedule_dlq_url" {
  description = "The schedule's DLQ (undelivered events, failed planner invocations)."
  value       = module.schedule.dlq_url
}

output "planner_function_name" {
  description = "The planner Lambda (invoke it by hand for a run now)."
  value       = module.lambda.planner_function_name
}

output "worker_function_name" {
  description = "The worker Lambda."
  value       = module.lambda.worker_function_name
}

output "ecs_cluster_name" {
  description = "The ECS cluster (BOTTLESYNC_ECS_CLUSTER)."
  value       = module.ecs.cluster_name
}

output "ecs_service_name" {
  description = "The ECS worker service (BOTTLESYNC_ECS_SERVICE)."
  value       = module.ecs.service_name
}

output "ecs_command" {
  description = "The ECS worker container's command."
  value       = module.ecs.command
}

output "slack_secret_arn" {
  description = "The secret holding the Slack webhook (BOTTLESYNC_SLACK_SECRET_ARN); null when notifications are off."
  value       = module.notifications.slack_secret_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.notifications.alarm_topic_arn
}

output "dashboard_url" {
  description = "The CloudWatch dashboard."
  value       = module.monitoring.dashboard_url
}

output "schedule_expression" {
  description = "When the planner runs."
  value       = module.schedule.schedule_expression
}

output "reconcile_schedule_expression" {
  description = "How often the planner reconciles stalled runs."
  value       = module.schedule.reconcile_schedule_expression
}

output "reconcile_rule_name" {
  description = "The EventBridge rule that invokes the planner's reconcile of stalled runs (every reconcile_schedule_expression)."
  value       = module.schedule.reconcile_rule_name
}

output "planner_environment" {
  description = "The planner Lambda's environment exactly as deployed."
  value       = module.lambda.planner_environment
}

output "worker_environment" {
  description = "The worker Lambda's environment exactly as deployed."
  value       = module.lambda.worker_environment
}

output "ecs_task_environment" {
  description = "The ECS worker task's environment exactly as in its task definition."
  value       = module.ecs.task_environment
}

output "iam_policies" {
  description = "Inline policy of each role (planner, worker, ecs-task, ecs-execution) and the operator policy."
  value       = module.iam.policies
}

output "iam_role_names" {
  description = "Role names by use: planner, worker, ecs-task, ecs-execution."
  value       = module.iam.role_names
}

output "operator_policy_arn" {
  description = "Managed policy to attach to the operators' own role or group: `bottlesync status`, `dlq list`, `dlq replay`, `plan` and `reconcile` from a shell."
  value       = module.iam.operator_policy_arn
}

output "cdn_domain_name" {
  description = "The CloudFront distribution's *.cloudfront.net name (enable_cdn); null when the CDN is off."
  value       = var.enable_cdn ? module.cdn[0].domain_name : null
}

output "homebrew_client_env" {
  description = "What brew clients set to use the mirror through CloudFront: \"HOMEBREW_API_DOMAIN=https://<domain>/api\\nHOMEBREW_BOTTLE_DOMAIN=https://<domain>/bottles\\nHOMEBREW_NO_AUTO_UPDATE=1\\nHOMEBREW_FORCE_API_AUTO_UPDATE=1\" (<domain>: the first of cdn_aliases, else cdn_domain_name); null when the CDN is off."
  value       = var.enable_cdn ? module.cdn[0].homebrew_client_env : null
}

output "kms_key_policy_json" {
  description = "With kms_key_arn: the key policy that key needs for the features chosen here (the account's IAM delegation; CloudWatch Logs for this stack's log groups; CloudWatch alarms and EventBridge to the encrypted topic and dead-letter queue; with enable_cdn, CloudFront for this distribution's AWS:SourceArn). Apply it to the key (aws kms put-key-policy, or your aws_kms_key's policy) after the first apply creates the distribution and log groups. null without kms_key_arn."
  value       = var.kms_key_arn == null ? null : jsonencode({ Version = "2012-10-17", Statement = local.kms_statements })
}
