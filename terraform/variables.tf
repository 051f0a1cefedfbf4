# The module's inputs. The seed design's names are kept (environment,
# s3_bucket_name, slack_webhook_url, size_threshold_gb, enable_notifications,
# schedule_expression, external_hash_file_*); aws_region and default_tags
# configure the provider, which the caller owns (examples/complete).

variable "environment" {
  description = "Name of this deployment (prod, staging, ...): part of every resource name, and BOTTLESYNC_ENVIRONMENT."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,19}$", var.environment))
    error_message = "environment must be 1-20 lower-case letters, digits or '-', starting with a letter or digit."
  }
}

variable "s3_bucket_name" {
  description = "The mirror bucket (created here)."
  type        = string
}

variable "mirror_prefix" {
  description = "Key prefix of the mirror in the bucket (BOTTLESYNC_PREFIX). Empty: the bucket root."
  type        = string
  default     = "homebrew"
}

variable "api_url" {
  description = "Homebrew API base (BOTTLESYNC_API_URL): the index is {api_url}/formula.json."
  type        = string
  default     = "https://formulae.brew.sh/api"

  validation {
    condition     = can(regex("^https?://[^ ]+$", var.api_url))
    error_message = "api_url must be an http(s) URL."
  }
}

variable "bottle_tags" {
  description = "Bottle tags to mirror (BOTTLESYNC_TAGS): \"auto\" (the newest three macOS releases, both architectures) or a comma-separated list."
  type        = string
  default     = "auto"

  validation {
    condition     = var.bottle_tags == "auto" || can(regex("^[a-z0-9_]+(,[a-z0-9_]+)*$", var.bottle_tags))
    error_message = "bottle_tags must be \"auto\" or a comma-separated list of tags such as arm64_tahoe,tahoe."
  }
}

variable "portable_ruby" {
  description = "Portable Ruby the planner mirrors (BOTTLESYNC_PORTABLE_RUBY), which a fresh machine's first brew run downloads from the mirror: \"auto\" (the two newest versions), a version such as \"4.0.6\" (brew's Library/Homebrew/vendor/portable-ruby-version), or \"off\"."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "off"], var.portable_ruby) || can(regex("^[0-9]+(\\.[0-9]+)*(_[0-9]+)?$", var.portable_ruby))
    error_message = "portable_ruby must be \"auto\", \"off\" or a Portable Ruby version such as 4.0.6."
  }
}

variable "allow_hosts" {
  description = "Extra hosts bottle URLs may point at (BOTTLESYNC_ALLOW_HOST); ghcr.io and the API host always may."
  type        = list(string)
  default     = []
}

variable "size_threshold_gb" {
  description = "Runs estimated at or above this many GB (10^9 bytes) go to the ECS workers, smaller ones to the Lambda workers (BOTTLESYNC_SIZE_THRESHOLD_GB)."
  type        = number
  default     = 20

  validation {
    condition     = var.size_threshold_gb > 0
    error_message = "size_threshold_gb must be > 0."
  }
}

variable "lambda_max_bottle_gb" {
  description = "A single bottle larger than this many GB goes to ECS even in a small run (BOTTLESYNC_LAMBDA_MAX_BOTTLE_GB)."
  type        = number
  default     = 5

  validation {
    condition     = var.lambda_max_bottle_gb > 0
    error_message = "lambda_max_bottle_gb must be > 0."
  }
}

variable "progress_interval_seconds" {
  description = "Seconds between Slack progress messages of an ECS run (BOTTLESYNC_PROGRESS_INTERVAL_SECONDS); 0: none."
  type        = number
  default     = 900

  validation {
    condition     = var.progress_interval_seconds >= 0
    error_message = "progress_interval_seconds must be >= 0."
  }
}

variable "external_hash_file_s3_bucket" {
  description = "Bucket of an external hash file whose bottles count as already mirrored (with external_hash_file_s3_key)."
  type        = string
  default     = null
}

variable "external_hash_file_s3_key" {
  description = "Key of the external hash file in external_hash_file_s3_bucket."
  type        = string
  default     = null
}

variable "external_hash_file_url" {
  description = "https:// URL of an external hash file (instead of the S3 pair)."
  type        = string
  default     = null

  validation {
    condition     = can(regex("^(https?://[^ ]+)?$", var.external_hash_file_url == null ? "" : var.external_hash_file_url))
    error_message = "external_hash_file_url must be an http(s) URL (or empty)."
  }
}

variable "external_hash_file_required" {
  description = "Fail the plan when the external hash file cannot be read (default: plan without it and say so)."
  type        = bool
  default     = false
}

variable "enable_notifications" {
  description = "Slack messages (run started, progress, summary). null: on when slack_webhook_url or slack_secret_arn is set."
  type        = bool
  default     = null

  validation {
    condition     = var.enable_notifications != true || nonsensitive(var.slack_webhook_url != null) || var.slack_secret_arn != null
    error_message = "enable_notifications = true needs slack_webhook_url or slack_secret_arn."
  }
}

variable "slack_webhook_url" {
  description = "Slack incoming webhook; stored write-only in a Secrets Manager secret, never in a function's environment."
  type        = string
  default     = null
  sensitive   = true
}

variable "slack_webhook_url_version" {
  description = "Bump after changing slack_webhook_url so that the new URL is written to the secret."
  type        = number
  default     = 1
}

variable "slack_secret_arn" {
  description = "An existing secret holding the webhook (instead of slack_webhook_url)."
  type        = string
  default     = null
}

variable "alarm_emails" {
  description = "Email addresses for the alarms (each confirms its subscription by email)."
  type        = list(string)
  default     = []
}

variable "schedule_expression" {
  description = "When the planner runs (EventBridge, UTC)."
  type        = string
  default     = "cron(0 3 ? * SUN *)"
}

variable "schedule_enabled" {
  description = "Run on the schedule (false pauses it; manual runs still work)."
  type        = bool
  default     = true
}

variable "reconcile_schedule_expression" {
  description = "How often the planner Lambda reconciles stalled runs (EventBridge rate() or cron(), UTC): it is invoked with {\"kind\": \"reconcile\"} and finishes every run without progress for run_stall_minutes, counting the bottles it cannot account for as failed. Runs whatever schedule_enabled says."
  type        = string
  default     = "rate(10 minutes)"

  validation {
    condition     = startswith(var.reconcile_schedule_expression, "rate(") || startswith(var.reconcile_schedule_expression, "cron(")
    error_message = "reconcile_schedule_expression must be an EventBridge rate(...) or cron(...) expression, e.g. rate(10 minutes)."
  }
}

variable "run_stall_minutes" {
  description = "Minutes without progress after which a fleet run counts as stalled (BOTTLESYNC_RUN_STALL_MINUTES): the reconcile then re-sends its lost bottles once, counts what cannot progress as failed, and posts the summary. Keep it above the longest bottle transfer."
  type        = number
  default     = 30

  validation {
    condition     = var.run_stall_minutes >= 5 && var.run_stall_minutes <= 1440 && floor(var.run_stall_minutes) == var.run_stall_minutes
    error_message = "run_stall_minutes must be a whole number of minutes between 5 and 1440 (a day)."
  }
}

variable "segment_size_mib" {
  description = "Workers download a bottle larger than this many MiB in segments of this size over several connections at once (BOTTLESYNC_SEGMENT_SIZE): registries and CDNs cap one connection's rate."
  type        = number
  default     = 64

  validation {
    condition     = var.segment_size_mib >= 1 && var.segment_size_mib <= 4096 && floor(var.segment_size_mib) == var.segment_size_mib
    error_message = "segment_size_mib must be a whole number of MiB between 1 and 4096."
  }
}

variable "connections_per_bottle" {
  description = "Connections one large bottle's segments share (BOTTLESYNC_CONNECTIONS_PER_BOTTLE; 1: one stream per bottle). An S3 upload holds up to 2 x this many + 4 parts of 8 MiB in memory: size worker_memory_mb for batch_size x that."
  type        = number
  default     = 4

  validation {
    condition     = var.connections_per_bottle >= 1 && var.connections_per_bottle <= 32 && floor(var.connections_per_bottle) == var.connections_per_bottle
    error_message = "connections_per_bottle must be a whole number between 1 and 32."
  }
}

variable "planner_zip_path" {
  description = "Zip of the planner Lambda. null: terraform/dist/bottlesync-planner-lambda.zip (scripts/package.sh), unless lambda_package_s3_bucket is set."
  type        = string
  default     = null
}

variable "worker_zip_path" {
  description = "Zip of the worker Lambda. null: terraform/dist/bottlesync-worker-lambda.zip (scripts/package.sh), unless lambda_package_s3_bucket is set."
  type        = string
  default     = null
}

variable "lambda_package_s3_bucket" {
  description = "Bucket (in the deployment's region) holding the two Lambda zips scripts/package.sh builds: for this module used from a remote source (git, registry), where terraform/dist does not exist. null: the zip paths."
  type        = string
  default     = null
}

variable "planner_package_s3_key" {
  description = "Key of the planner zip in lambda_package_s3_bucket."
  type        = string
  default     = "bottlesync-planner-lambda.zip"
}

variable "worker_package_s3_key" {
  description = "Key of the worker zip in lambda_package_s3_bucket."
  type        = string
  default     = "bottlesync-worker-lambda.zip"
}

variable "planner_package_s3_object_version" {
  description = "Object version of the planner zip (a versioned bucket): a new version redeploys the function. null: redeployed when the key changes."
  type        = string
  default     = null
}

variable "worker_package_s3_object_version" {
  description = "Object version of the worker zip (a versioned bucket): a new version redeploys the function. null: redeployed when the key changes."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Architecture the Lambda zips are built for."
  type        = string
  default     = "arm64"
}

variable "worker_timeout_seconds" {
  description = "Timeout of the worker Lambda (the Lambda queue's visibility timeout is 6x this)."
  type        = number
  default     = 900
}

variable "worker_memory_mb" {
  description = "Memory of the worker Lambda."
  type        = number
  default     = 1024
}

variable "worker_max_concurrency" {
  description = "Most worker Lambdas running at once."
  type        = number
  default     = 20
}

variable "worker_batch_size" {
  description = "Bottles per worker Lambda invocation."
  type        = number
  default     = 1
}

variable "planner_timeout_seconds" {
  description = "Timeout of the planner Lambda."
  type        = number
  default     = 900
}

variable "planner_memory_mb" {
  description = "Memory of the planner Lambda."
  type        = number
  default     = 1024
}

variable "worker_image" {
  description = "Container image of the ECS worker (the repository's Dockerfile)."
  type        = string
}

variable "ecs_worker_concurrency" {
  description = "Bottles one ECS task works on at once."
  type        = number
  default     = 4
}

variable "ecs_task_cpu" {
  description = "CPU units of an ECS task."
  type        = number
  default     = 1024
}

variable "ecs_task_memory" {
  description = "Memory (MiB) of an ECS task."
  type        = number
  default     = 2048
}

variable "ecs_cpu_architecture" {
  description = "CPU architecture of the ECS task (X86_64 or ARM64); the image must match."
  type        = string
  default     = "X86_64"
}

variable "ecs_max_tasks" {
  description = "Most ECS worker tasks."
  type        = number
  default     = 10
}

variable "ecs_wake_tasks" {
  description = "Tasks started when a run goes to ECS and the service is at zero (BOTTLESYNC_ECS_WAKE_TASKS)."
  type        = number
  default     = 1
}

variable "ecs_target_backlog_per_task" {
  description = "Visible messages per running task that queue-depth scaling aims for."
  type        = number
  default     = 50
}

variable "ecs_scale_in_idle_minutes" {
  description = "Minutes of empty ECS queue before the service scales to zero."
  type        = number
  default     = 15
}

variable "ecs_visibility_timeout_seconds" {
  description = "Visibility timeout of the ECS queue, also the worker's BOTTLESYNC_VISIBILITY_TIMEOUT."
  type        = number
  default     = 300
}

variable "ecs_fargate_spot_weight" {
  description = "Share of ECS tasks on FARGATE_SPOT (X86_64 only: 0 with ecs_cpu_architecture = ARM64)."
  type        = number
  default     = 3

  validation {
    condition     = var.ecs_cpu_architecture == "X86_64" || var.ecs_fargate_spot_weight == 0
    error_message = "Fargate Spot runs X86_64 tasks only: with ecs_cpu_architecture = \"ARM64\" set ecs_fargate_spot_weight = 0 (ARM64 tasks placed on Spot never start)."
  }
}

variable "ecs_fargate_base" {
  description = "ECS tasks that always run on on-demand FARGATE before the weights apply (the task that wakes the service from zero)."
  type        = number
  default     = 1
}

variable "ecs_fargate_weight" {
  description = "Share of ECS tasks on on-demand FARGATE."
  type        = number
  default     = 1
}

variable "enable_ecs_autoscaling" {
  description = "Queue-depth scaling of the ECS service (false only for moto)."
  type        = bool
  default     = true
}

variable "max_receive_count" {
  description = "Receives of a message before it moves to the DLQ. At least 3: workers give a bottle up (count it failed, dead-letter it themselves) two receives before SQS would, so that a worker dying on that attempt cannot leave it dead-lettered uncounted."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 3
    error_message = "max_receive_count must be at least 3: the consumer keeps 2 receives in reserve (it gives a bottle up two receives before SQS dead-letters it, so that the bottle is counted even when a worker dies on that attempt)."
  }
}

variable "enable_redrive_allow_policy" {
  description = "The DLQ's redrive-allow policy (false only for moto)."
  type        = bool
  default     = true
}

variable "enforce_tls" {
  description = "TLS-only bucket policies (false only for moto, which serves plain HTTP and enforces bucket policies)."
  type        = bool
  default     = true
}

variable "enable_event_source_mapping" {
  description = "Connect the worker Lambda to its queue (false only for moto, which cannot run Lambda functions here)."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR block of the workers' VPC."
  type        = string
  default     = "10.42.0.0/16"
}

variable "az_count" {
  description = "Availability zones of the workers' subnets."
  type        = number
  default     = 2
}

variable "enable_nat_gateway" {
  description = "Private subnets with NAT for the ECS tasks (costs more than everything else; off by default)."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "An existing VPC for the ECS worker tasks (with subnet_ids). null: the module creates one (vpc_cidr, az_count, enable_nat_gateway)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "With vpc_id: the subnets the ECS tasks run in; they need a route to the internet (NAT, or public subnets with assign_public_ip) and to S3 and DynamoDB."
  type        = list(string)
  default     = []

  validation {
    condition     = (var.vpc_id == null) == (length(var.subnet_ids) == 0)
    error_message = "subnet_ids and vpc_id go together: an existing VPC needs the subnets the tasks run in, and subnets need their vpc_id."
  }
}

variable "security_group_ids" {
  description = "With vpc_id: security groups of the ECS tasks. Empty: one is created with outbound HTTPS only."
  type        = list(string)
  default     = []

  validation {
    condition     = var.vpc_id != null || length(var.security_group_ids) == 0
    error_message = "security_group_ids need vpc_id (and subnet_ids): with the module's own VPC it makes the tasks' security group."
  }
}

variable "assign_public_ip" {
  description = "With vpc_id: give the ECS tasks public IPs (public subnets without NAT). Ignored for the module's own VPC, which decides from enable_nat_gateway."
  type        = bool
  default     = false
}

variable "iam_role_path" {
  description = "Path of the IAM roles this module creates (e.g. \"/teams/platform/\")."
  type        = string
  default     = "/"
}

variable "iam_role_permissions_boundary" {
  description = "ARN of a managed policy set as the permissions boundary of every IAM role this module creates. null: none."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for bucket, queues, table, secret, topic and logs. null: AWS-managed encryption everywhere."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the Lambda and ECS log groups."
  type        = number
  default     = 30
}

variable "oldest_message_age_alarm_seconds" {
  description = "Alarm when a work queue's oldest message is older than this."
  type        = number
  default     = 21600
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the workers' EMF metrics (dashboard)."
  type        = string
  default     = "bottlesync"
}

variable "storage_transitions" {
  description = "Storage-class transitions of the mirror's objects (days, storage_class). Default: INTELLIGENT_TIERING at once: priced by last read, not age (old bottles are often the most read), no retrieval fee."
  type = list(object({
    days          = number
    storage_class = string
  }))
  default = [
    { days = 0, storage_class = "INTELLIGENT_TIERING" },
  ]
}

variable "archive_days" {
  description = "Days the dated folders (<mirror_prefix>/<YYYY-MM-DD>/, what each run downloaded) are kept before they expire; each bottle stays under bottles/, which bottles_hash.json names. Default 30: every bottle stored once at steady state. 0: keep them forever (every bottle stored twice)."
  type        = number
  default     = 30

  validation {
    condition     = var.archive_days >= 0 && floor(var.archive_days) == var.archive_days
    error_message = "archive_days must be a whole number of days >= 0 (0 keeps the dated folders forever)."
  }
}

variable "expire_current_days" {
  description = "Delete current bottles after this many days. null (default): never."
  type        = number
  default     = null
}

variable "protect_data" {
  description = "Keep data on destroy: non-empty buckets, the ledger table (deletion protection) and the Slack secret (recovery window) survive `terraform destroy`. false only for throwaway stacks."
  type        = bool
  default     = true
}

# ------------------------------------------------------------------ CDN ----

variable "enable_cdn" {
  description = "Serve the mirror to brew clients through CloudFront (modules/cdn): HTTPS only, bottles/* and api/* of the mirror and nothing else, the bucket stays private (origin access control). Output homebrew_client_env gives the clients' settings."
  type        = bool
  default     = false
}

variable "cdn_price_class" {
  description = "CloudFront price class (with enable_cdn): PriceClass_100 (North America, Europe: cheapest), PriceClass_200 or PriceClass_All."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.cdn_price_class)
    error_message = "cdn_price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "cdn_aliases" {
  description = "Host names clients use instead of the *.cloudfront.net name (with enable_cdn), e.g. [\"brew-mirror.example.com\"]; the first one goes into homebrew_client_env. Needs cdn_acm_certificate_arn; the DNS record is yours to create."
  type        = list(string)
  default     = []

  validation {
    condition     = (length(var.cdn_aliases) == 0) == (var.cdn_acm_certificate_arn == null)
    error_message = "cdn_aliases and cdn_acm_certificate_arn go together: set both (a us-east-1 ACM certificate covering every alias) or neither."
  }
}

variable "cdn_acm_certificate_arn" {
  description = "ACM certificate in us-east-1 covering every name in cdn_aliases (with enable_cdn). null: CloudFront's *.cloudfront.net certificate."
  type        = string
  default     = null
}

variable "cdn_log_bucket_domain_name" {
  description = "CloudFront standard access logs to this bucket (domain name <bucket>.s3.amazonaws.com, ACLs enabled; with enable_cdn). null: no access logs."
  type        = string
  default     = null
}

variable "cdn_web_acl_id" {
  description = "ARN of a WAFv2 web ACL (scope CLOUDFRONT) for the distribution (with enable_cdn). null: none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of every resource this module creates that takes tags (on top of the provider's default_tags), e.g. { CostCenter = \"platform\" }."
  type        = map(string)
  default     = {}
}
