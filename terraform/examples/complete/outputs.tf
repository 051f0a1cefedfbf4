# Every output of the module, under the same names (what the old root module
# gave: `terraform output planner_environment` etc. work as before).

output "bucket" {
  description = "The mirror bucket (BOTTLESYNC_BUCKET)."
  value       = module.bottlesync.bucket
}

output "mirror_prefix" {
  description = "Key prefix of the mirror (BOTTLESYNC_PREFIX)."
  value       = module.bottlesync.mirror_prefix
}

output "mirror_url" {
  description = "Where the mirror lives."
  value       = module.bottlesync.mirror_url
}

output "ledger_table" {
  description = "The ledger table (BOTTLESYNC_LEDGER_TABLE)."
  value       = module.bottlesync.ledger_table
}

output "lambda_queue_url" {
  description = "The Lambda queue (BOTTLESYNC_QUEUE_URL)."
  value       = module.bottlesync.lambda_queue_url
}

output "ecs_queue_url" {
  description = "The ECS queue (BOTTLESYNC_LARGE_QUEUE_URL)."
  value       = module.bottlesync.ecs_queue_url
}

output "dlq_url" {
  description = "The work queues' DLQ (BOTTLESYNC_DLQ_URL)."
  value       = module.bottlesync.dlq_url
}

output "schedule_dlq_url" {
  description = "The schedule's DLQ (undelivered events, failed planner invocations)."
  value       = module.bottlesync.schedule_dlq_url
}

output "planner_function_name" {
  description = "The planner Lambda (invoke it by hand for a run now)."
  value       = module.bottlesync.planner_function_name
}

output "worker_function_name" {
  description = "The worker Lambda."
  value       = module.bottlesync.worker_function_name
}

output "ecs_cluster_name" {
  description = "The ECS cluster (BOTTLESYNC_ECS_CLUSTER)."
  value       = module.bottlesync.ecs_cluster_name
}

output "ecs_service_name" {
  description = "The ECS worker service (BOTTLESYNC_ECS_SERVICE)."
  value       = module.bottlesync.ecs_service_name
}

output "ecs_command" {
  description = "The ECS worker container's command."
  value       = module.bottlesync.ecs_command
}

output "slack_secret_arn" {
  description = "The secret holding the Slack webhook (BOTTLESYNC_SLACK_SECRET_ARN); null when notifications are off."
  value       = module.bottlesync.slack_secret_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.bottlesync.alarm_topic_arn
}

output "dashboard_url" {
  description = "The CloudWatch dashboard."
  value       = module.bottlesync.dashboard_url
}

output "schedule_expression" {
  description = "When the planner runs."
  value       = module.bottlesync.schedule_expression
}

output "reconcile_schedule_expression" {
  description = "How often the planner reconciles stalled runs."
  value       = module.bottlesync.reconcile_schedule_expression
}

output "reconcile_rule_name" {
  description = "The EventBridge rule that invokes the planner's reconcile of stalled runs (every reconcile_schedule_expression)."
  value       = module.bottlesync.reconcile_rule_name
}

output "planner_environment" {
  description = "The planner Lambda's environment exactly as deployed."
  value       = module.bottlesync.planner_environment
}

output "worker_environment" {
  description = "The worker Lambda's environment exactly as deployed."
  value       = module.bottlesync.worker_environment
}

output "ecs_task_environment" {
  description = "The ECS worker task's environment exactly as in its task definition."
  value       = module.bottlesync.ecs_task_environment
}

output "iam_policies" {
  description = "Inline policy of each role."
  value       = module.bottlesync.iam_policies
}

output "cdn_domain_name" {
  description = "The CloudFront distribution's *.cloudfront.net name (enable_cdn); null when the CDN is off."
  value       = module.bottlesync.cdn_domain_name
}

output "homebrew_client_env" {
  description = "The HOMEBREW_API_DOMAIN, HOMEBREW_BOTTLE_DOMAIN, HOMEBREW_NO_AUTO_UPDATE and HOMEBREW_FORCE_API_AUTO_UPDATE lines for brew clients (enable_cdn); null when the CDN is off."
  value       = module.bottlesync.homebrew_client_env
}
