variable "name_prefix" {
  description = "Prefix of the queue names, e.g. \"bottlesync-prod\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,60}$", var.name_prefix))
    error_message = "name_prefix must be 1-60 letters, digits, '_' or '-' (SQS queue names allow no more)."
  }
}

variable "lambda_timeout_seconds" {
  description = "Timeout of the worker Lambda. The Lambda queue's visibility timeout is 6x this, as AWS recommends for SQS event sources."
  type        = number
  default     = 900

  validation {
    condition     = var.lambda_timeout_seconds >= 1 && var.lambda_timeout_seconds <= 900 && floor(var.lambda_timeout_seconds) == var.lambda_timeout_seconds
    error_message = "lambda_timeout_seconds must be a whole number of seconds between 1 and 900."
  }
}

variable "ecs_visibility_timeout_seconds" {
  description = "Visibility timeout of the ECS queue. The ECS worker extends in-flight messages by this much (`bottlesync work --visibility-timeout`, BOTTLESYNC_VISIBILITY_TIMEOUT): both must be equal."
  type        = number
  default     = 300

  validation {
    condition     = var.ecs_visibility_timeout_seconds >= 30 && var.ecs_visibility_timeout_seconds <= 43200 && floor(var.ecs_visibility_timeout_seconds) == var.ecs_visibility_timeout_seconds
    error_message = "ecs_visibility_timeout_seconds must be a whole number between 30 and 43200 (the heartbeat needs room to extend it in time)."
  }
}

variable "max_receive_count" {
  description = "Receives of a message before SQS moves it to the DLQ. Workers give a bottle up (count it failed, dead-letter it themselves) two receives earlier, so a worker dying on that attempt cannot leave it dead-lettered uncounted: keep it at 3 or more."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 3 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number between 3 and 1000: the consumer keeps 2 receives in reserve (it gives a bottle up two receives before SQS dead-letters it, so that the bottle is counted even when a worker dies on that attempt)."
  }
}

variable "message_retention_seconds" {
  description = "How long the work queues keep a message. The planner's queued marks expire after 4 days (345600 s), the default: keep them equal."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "dlq_message_retention_seconds" {
  description = "How long the DLQ keeps a message (time to look at failures and replay them)."
  type        = number
  default     = 1209600

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "receive_wait_time_seconds" {
  description = "Long-poll wait of the queues."
  type        = number
  default     = 20

  validation {
    condition     = var.receive_wait_time_seconds >= 0 && var.receive_wait_time_seconds <= 20
    error_message = "receive_wait_time_seconds must be between 0 and 20."
  }
}

variable "kms_key_arn" {
  description = "KMS key for queue encryption. null: SQS-managed SSE."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", coalesce(var.kms_key_arn, "x")))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "enable_redrive_allow_policy" {
  description = "Create the DLQ's redrive-allow policy (only the two work queues may use it). false only for moto, where the resource never finishes."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
