variable "name_prefix" {
  description = "Prefix of the role names: <prefix>-planner, -worker, -ecs-task, -ecs-execution."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,45}$", var.name_prefix))
    error_message = "name_prefix must be 1-45 characters allowed in IAM role names."
  }
}

variable "bucket_arn" {
  description = "ARN of the mirror bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.bucket_arn))
    error_message = "bucket_arn must be an S3 bucket ARN."
  }
}

variable "mirror_prefix" {
  description = "Key prefix of the mirror (BOTTLESYNC_PREFIX); object access is limited to it. Empty: the whole bucket."
  type        = string
  default     = ""
}

variable "ledger_table_arn" {
  description = "ARN of the ledger table."
  type        = string
}

variable "lambda_queue_arn" {
  description = "ARN of the Lambda queue."
  type        = string
}

variable "ecs_queue_arn" {
  description = "ARN of the ECS queue."
  type        = string
}

variable "dlq_arn" {
  description = "ARN of the work queues' DLQ."
  type        = string
}

variable "planner_dead_letter_arn" {
  description = "ARN of the queue that receives failed asynchronous planner invocations (the schedule's DLQ); null: none."
  type        = string
  default     = null
}

variable "slack_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the Slack webhook; null: notifications off."
  type        = string
  default     = null
}

variable "kms_key_arns" {
  description = "Customer-managed KMS keys the functions and tasks use for data (bucket, queues, table, secret)."
  type        = list(string)
  default     = []
}

variable "external_hash_file_object_arn" {
  description = "ARN of the external hash file object when it is in S3 (arn:aws:s3:::bucket/key); the planner may read it. null: none."
  type        = string
  default     = null

  validation {
    condition     = var.external_hash_file_object_arn == null || can(regex("^arn:aws[a-z-]*:s3:::[^/]+/.+$", coalesce(var.external_hash_file_object_arn, "x")))
    error_message = "external_hash_file_object_arn must be an S3 object ARN (arn:aws:s3:::bucket/key)."
  }
}

variable "planner_log_group_arn" {
  description = "ARN of the planner's log group."
  type        = string
}

variable "worker_log_group_arn" {
  description = "ARN of the worker Lambda's log group."
  type        = string
}

variable "ecs_log_group_arn" {
  description = "ARN of the ECS tasks' log group."
  type        = string
}

variable "ecs_service_arn" {
  description = "ARN of the ECS worker service: the planner raises its desired count when a run goes to ECS."
  type        = string
}

variable "ecs_cluster_name" {
  description = "Cluster of the ECS worker tasks: the task role may set scale-in protection on its tasks only. null: tasks of any cluster in the account."
  type        = string
  default     = null
}

variable "ecr_repository_arns" {
  description = "ECR repositories the task execution role may pull from (empty for images outside ECR)."
  type        = list(string)
  default     = []
}

variable "enable_xray" {
  description = "Allow the functions to send X-Ray traces (Lambda tracing mode Active)."
  type        = bool
  default     = false
}

variable "role_path" {
  description = "Path of the four roles (organisations that reserve a path for team-created roles, e.g. \"/teams/platform/\")."
  type        = string
  default     = "/"

  validation {
    condition     = can(regex("^/([\\x21-\\x7e]+/)?$", var.role_path)) && length(var.role_path) <= 512
    error_message = "role_path must begin and end with / (e.g. \"/\" or \"/teams/platform/\"), at most 512 printable characters."
  }
}

variable "role_permissions_boundary" {
  description = "ARN of a managed policy set as the permissions boundary of the four roles (organisations that require one for roles teams create). null: none."
  type        = string
  default     = null

  validation {
    condition     = var.role_permissions_boundary == null || can(regex("^arn:aws[a-z-]*:iam::(\\d{12}|aws):policy/", var.role_permissions_boundary))
    error_message = "role_permissions_boundary must be the ARN of an IAM managed policy (arn:aws:iam::<account>:policy/...)."
  }
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
