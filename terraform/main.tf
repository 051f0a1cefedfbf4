# bottlesync: the whole fleet wired together. This directory is the module
# (terraform-aws-modules layout): it configures no provider; examples/local
# (moto, applied by scripts/terraform-check.sh) and examples/complete (real
# AWS) call it with their own provider.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  name = "bottlesync-${var.environment}"

  # Known up front (the planner's environment names the ECS service, and the
  # task definition that the service runs carries the same environment).
  ecs_cluster_name = local.name
  ecs_service_name = "${local.name}-worker"

  mirror_prefix = trim(var.mirror_prefix, "/")

  # "" and null both mean unset (seed tfvars used empty strings).
  hash_url    = var.external_hash_file_url == null ? "" : trimspace(var.external_hash_file_url)
  hash_bucket = var.external_hash_file_s3_bucket == null ? "" : trimspace(var.external_hash_file_s3_bucket)
  hash_key    = var.external_hash_file_s3_key == null ? "" : trimprefix(trimspace(var.external_hash_file_s3_key), "/")
  external_hash_file = (
    local.hash_url != "" ? local.hash_url :
    local.hash_bucket != "" && local.hash_key != "" ? "s3://${local.hash_bucket}/${local.hash_key}" :
    null
  )
  external_hash_file_object_arn = local.hash_url == "" && local.hash_bucket != "" && local.hash_key != "" ? "arn:${data.aws_partition.current.partition}:s3:::${local.hash_bucket}/${local.hash_key}" : null

  # Whether a webhook is set is not secret (the URL is).
  slack_configured = nonsensitive(var.slack_webhook_url != null) || var.slack_secret_arn != null
  enable_slack     = var.enable_notifications == null ? local.slack_configured : var.enable_notifications

  # Zips from S3 when a bucket is given (a remote module source has no dist/).
  planner_zip_path = var.lambda_package_s3_bucket != null ? null : coalesce(var.planner_zip_path, "${path.module}/dist/bottlesync-planner-lambda.zip")
  worker_zip_path  = var.lambda_package_s3_bucket != null ? null : coalesce(var.worker_zip_path, "${path.module}/dist/bottlesync-worker-lambda.zip")

  # ECR images: the execution role may pull from that repository only.
  ecr_match           = regex("^(?:(\\d{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/([^:@]+))?", var.worker_image)
  ecr_repository_arns = local.ecr_match[0] == null ? [] : ["arn:${data.aws_partition.current.partition}:ecr:${local.ecr_match[1]}:${local.ecr_match[0]}:repository/${local.ecr_match[2]}"]

  kms_key_arns = var.kms_key_arn == null ? [] : [var.kms_key_arn]

  # The settings every function and task gets (unset ones are left out).
  # Each role adds BOTTLESYNC_LOG_GROUP (lambda, ecs modules); the ECS task
  # adds BOTTLESYNC_VISIBILITY_TIMEOUT.
  settings = { for k, v in {
    BOTTLESYNC_BUCKET                      = module.storage.bucket_id
    BOTTLESYNC_PREFIX                      = local.mirror_prefix
    BOTTLESYNC_QUEUE_URL                   = module.queues.lambda_queue_url
    BOTTLESYNC_LARGE_QUEUE_URL             = module.queues.ecs_queue_url
    BOTTLESYNC_DLQ_URL                     = module.queues.dlq_url
    BOTTLESYNC_LEDGER_TABLE                = module.ledger.table_name
    BOTTLESYNC_API_URL                     = var.api_url
    BOTTLESYNC_TAGS                        = var.bottle_tags
    BOTTLESYNC_ALLOW_HOST                  = join(",", var.allow_hosts)
    BOTTLESYNC_SIZE_THRESHOLD_GB           = tostring(var.size_threshold_gb)
    BOTTLESYNC_LAMBDA_MAX_BOTTLE_GB        = tostring(var.lambda_max_bottle_gb)
    BOTTLESYNC_SLACK_SECRET_ARN            = module.notifications.slack_secret_arn
    BOTTLESYNC_EXTERNAL_HASH_FILE          = local.external_hash_file
    BOTTLESYNC_EXTERNAL_HASH_FILE_REQUIRED = var.external_hash_file_required ? "true" : null
    BOTTLESYNC_ENVIRONMENT                 = var.environment
    BOTTLESYNC_ECS_CLUSTER                 = local.ecs_cluster_name
    BOTTLESYNC_ECS_SERVICE                 = local.ecs_service_name
    BOTTLESYNC_ECS_WAKE_TASKS              = tostring(var.ecs_wake_tasks)
    BOTTLESYNC_PROGRESS_INTERVAL_SECONDS   = tostring(var.progress_interval_seconds)
    BOTTLESYNC_RUN_STALL_MINUTES           = tostring(var.run_stall_minutes)
    BOTTLESYNC_SEGMENT_SIZE                = "${var.segment_size_mib}MiB"
    BOTTLESYNC_CONNECTIONS_PER_BOTTLE      = tostring(var.connections_per_bottle)
  } : k => v if v != null && v != "" }
}

module "storage" {
  source              = "./modules/storage"
  tags                = var.tags
  bucket_name         = var.s3_bucket_name
  mirror_prefix       = local.mirror_prefix
  kms_key_arn         = var.kms_key_arn
  force_destroy       = !var.protect_data
  transitions         = var.storage_transitions
  expire_current_days = var.expire_current_days
  archive_days        = var.archive_days
  enforce_tls         = var.enforce_tls
  # The CDN's read grant joins the bucket's one policy.
  policy_documents = var.enable_cdn ? [module.cdn[0].bucket_policy_json] : []
}

module "queues" {
  source                         = "./modules/queues"
  tags                           = var.tags
  name_prefix                    = local.name
  lambda_timeout_seconds         = var.worker_timeout_seconds
  ecs_visibility_timeout_seconds = var.ecs_visibility_timeout_seconds
  max_receive_count              = var.max_receive_count
  kms_key_arn                    = var.kms_key_arn
  enable_redrive_allow_policy    = var.enable_redrive_allow_policy
}

module "ledger" {
  source              = "./modules/ledger"
  tags                = var.tags
  table_name          = "${local.name}-ledger"
  kms_key_arn         = var.kms_key_arn
  deletion_protection = var.protect_data
}

module "notifications" {
  source                      = "./modules/notifications"
  tags                        = var.tags
  name_prefix                 = local.name
  enable_slack                = local.enable_slack
  slack_webhook_url           = var.slack_webhook_url
  slack_webhook_url_version   = var.slack_webhook_url_version
  slack_secret_arn            = var.slack_secret_arn
  secret_recovery_window_days = var.protect_data ? 7 : 0
  alarm_emails                = var.alarm_emails
  kms_key_arn                 = var.kms_key_arn
}

# Before vpc_id existed the network was not counted: keep deployed VPCs.
moved {
  from = module.network
  to   = module.network[0]
}

module "network" {
  # None when the operator gives an existing VPC's subnets.
  count              = var.vpc_id == null ? 1 : 0
  source             = "./modules/network"
  tags               = var.tags
  name_prefix        = local.name
  vpc_cidr           = var.vpc_cidr
  az_count           = var.az_count
  enable_nat_gateway = var.enable_nat_gateway
}

module "iam" {
  source                        = "./modules/iam"
  tags                          = var.tags
  role_path                     = var.iam_role_path
  role_permissions_boundary     = var.iam_role_permissions_boundary
  name_prefix                   = local.name
  bucket_arn                    = module.storage.bucket_arn
  mirror_prefix                 = local.mirror_prefix
  ledger_table_arn              = module.ledger.table_arn
  lambda_queue_arn              = module.queues.lambda_queue_arn
  ecs_queue_arn                 = module.queues.ecs_queue_arn
  dlq_arn                       = module.queues.dlq_arn
  planner_dead_letter_arn       = module.schedule.dlq_arn
  slack_secret_arn              = module.notifications.slack_secret_arn
  kms_key_arns                  = local.kms_key_arns
  external_hash_file_object_arn = local.external_hash_file_object_arn
  planner_log_group_arn         = module.lambda.log_group_arns["planner"]
  worker_log_group_arn          = module.lambda.log_group_arns["worker"]
  ecs_log_group_arn             = module.ecs.log_group_arn
  ecs_service_arn               = module.ecs.service_arn
  ecs_cluster_name              = local.ecs_cluster_name
  ecr_repository_arns           = local.ecr_repository_arns
}

module "lambda" {
  source                      = "./modules/lambda"
  tags                        = var.tags
  name_prefix                 = local.name
  planner_zip_path            = local.planner_zip_path
  worker_zip_path             = local.worker_zip_path
  package_s3_bucket           = var.lambda_package_s3_bucket
  planner_s3_key              = var.lambda_package_s3_bucket == null ? null : var.planner_package_s3_key
  worker_s3_key               = var.lambda_package_s3_bucket == null ? null : var.worker_package_s3_key
  planner_s3_object_version   = var.planner_package_s3_object_version
  worker_s3_object_version    = var.worker_package_s3_object_version
  planner_role_arn            = module.iam.planner_role_arn
  worker_role_arn             = module.iam.worker_role_arn
  planner_environment         = local.settings
  portable_ruby               = var.portable_ruby
  worker_environment          = local.settings
  architecture                = var.lambda_architecture
  planner_timeout_seconds     = var.planner_timeout_seconds
  planner_memory_mb           = var.planner_memory_mb
  worker_timeout_seconds      = var.worker_timeout_seconds
  worker_memory_mb            = var.worker_memory_mb
  log_retention_days          = var.log_retention_days
  queue_arn                   = module.queues.lambda_queue_arn
  enable_event_source_mapping = var.enable_event_source_mapping
  batch_size                  = var.worker_batch_size
  maximum_concurrency         = var.worker_max_concurrency
  planner_dead_letter_arn     = module.schedule.dlq_arn
  kms_key_arn                 = var.kms_key_arn
}

module "ecs" {
  source                     = "./modules/ecs"
  tags                       = var.tags
  cluster_name               = local.ecs_cluster_name
  service_name               = local.ecs_service_name
  image                      = var.worker_image
  worker_concurrency         = var.ecs_worker_concurrency
  cpu                        = var.ecs_task_cpu
  memory                     = var.ecs_task_memory
  cpu_architecture           = var.ecs_cpu_architecture
  task_role_arn              = module.iam.ecs_task_role_arn
  execution_role_arn         = module.iam.ecs_execution_role_arn
  environment                = local.settings
  visibility_timeout_seconds = module.queues.ecs_visibility_timeout_seconds
  queue_name                 = module.queues.ecs_queue_name
  subnet_ids                 = local.task_subnet_ids
  security_group_ids         = local.task_security_group_ids
  assign_public_ip           = local.task_public_ip
  fargate_spot_weight        = var.ecs_fargate_spot_weight
  fargate_weight             = var.ecs_fargate_weight
  fargate_base               = var.ecs_fargate_base
  log_retention_days         = var.log_retention_days
  kms_key_arn                = var.kms_key_arn
  enable_autoscaling         = var.enable_ecs_autoscaling
  max_tasks                  = var.ecs_max_tasks
  wake_tasks                 = var.ecs_wake_tasks
  target_backlog_per_task    = var.ecs_target_backlog_per_task
  scale_in_idle_minutes      = var.ecs_scale_in_idle_minutes
}

module "schedule" {
  source                        = "./modules/schedule"
  tags                          = var.tags
  name_prefix                   = local.name
  schedule_expression           = var.schedule_expression
  enabled                       = var.schedule_enabled
  reconcile_schedule_expression = var.reconcile_schedule_expression
  planner_function_arn          = module.lambda.planner_function_arn
  planner_function_name         = module.lambda.planner_function_name
  kms_key_arn                   = var.kms_key_arn
}

module "monitoring" {
  source                           = "./modules/monitoring"
  tags                             = var.tags
  name_prefix                      = local.name
  alarm_topic_arn                  = module.notifications.alarm_topic_arn
  lambda_queue_name                = module.queues.lambda_queue_name
  ecs_queue_name                   = module.queues.ecs_queue_name
  dlq_name                         = module.queues.dlq_name
  schedule_dlq_name                = module.schedule.dlq_name
  planner_function_name            = module.lambda.planner_function_name
  worker_function_name             = module.lambda.worker_function_name
  ecs_cluster_name                 = module.ecs.cluster_name
  ecs_cluster_arn                  = module.ecs.cluster_arn
  ecs_service_name                 = module.ecs.service_name
  metrics_namespace                = var.metrics_namespace
  environment                      = var.environment
  oldest_message_age_alarm_seconds = var.oldest_message_age_alarm_seconds
}

module "cdn" {
  source = "./modules/cdn"
  tags   = var.tags
  count  = var.enable_cdn ? 1 : 0

  name_prefix                 = local.name
  bucket_id                   = module.storage.bucket_id
  bucket_arn                  = module.storage.bucket_arn
  bucket_regional_domain_name = module.storage.bucket_regional_domain_name
  mirror_prefix               = local.mirror_prefix
  price_class                 = var.cdn_price_class
  aliases                     = var.cdn_aliases
  acm_certificate_arn         = var.cdn_acm_certificate_arn
  log_bucket_domain_name      = var.cdn_log_bucket_domain_name
  web_acl_id                  = var.cdn_web_acl_id
}

# ------------------------------------------------- the ECS tasks' network ----
# Created (modules/network), or an existing VPC's subnets: then the tasks
# get the security groups given, else one with outbound HTTPS only.

locals {
  task_subnet_ids = var.vpc_id == null ? module.network[0].task_subnet_ids : var.subnet_ids
  task_security_group_ids = (
    var.vpc_id == null ? [module.network[0].task_security_group_id] :
    length(var.security_group_ids) > 0 ? var.security_group_ids : [aws_security_group.tasks[0].id]
  )
  # Created public subnets (no NAT) need public IPs; an existing VPC's
  # subnets are private with a route out unless told otherwise.
  task_public_ip = var.vpc_id == null ? module.network[0].assign_public_ip : var.assign_public_ip
}

resource "aws_security_group" "tasks" {
  #checkov:skip=CKV2_AWS_5:Attached to the ECS worker service (modules/ecs, through local.task_security_group_ids); checkov does not follow module inputs.
  count       = var.vpc_id != null && length(var.security_group_ids) == 0 ? 1 : 0
  name        = "${local.name}-tasks"
  description = "bottlesync workers: no inbound traffic, outbound HTTPS only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  #checkov:skip=CKV_AWS_382:The workers download from Homebrew's registry and CDN, whose addresses are not fixed; egress is HTTPS only.
  count             = length(aws_security_group.tasks)
  security_group_id = aws_security_group.tasks[0].id
  description       = "Outbound HTTPS"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = var.tags
}
