variable "name_prefix" {
  description = "Prefix of the rule and DLQ names."
  type        = string
}

variable "schedule_expression" {
  description = "When the planner runs: an EventBridge cron() or rate() expression (UTC). Default: Sundays 03:00."
  type        = string
  default     = "cron(0 3 ? * SUN *)"

  validation {
    condition     = can(regex("^(cron\\(([^ )]+ ){5}[^ )]+\\)|rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\))$", var.schedule_expression))
    error_message = "schedule_expression must be cron(min hour day-of-month month day-of-week year) with six fields, or rate(N unit)."
  }
}

variable "enabled" {
  description = "Run on the schedule (false keeps the rule but pauses it; manual runs still work)."
  type        = bool
  default     = true
}

variable "reconcile_schedule_expression" {
  description = "How often the planner is invoked with {\"kind\": \"reconcile\"} to finish stalled runs: an EventBridge rate() or cron() expression (UTC). Not paused by enabled = false."
  type        = string
  default     = "rate(10 minutes)"

  validation {
    condition     = startswith(var.reconcile_schedule_expression, "rate(") || startswith(var.reconcile_schedule_expression, "cron(")
    error_message = "reconcile_schedule_expression must be an EventBridge rate(...) or cron(...) expression, e.g. rate(10 minutes)."
  }
}

variable "planner_function_arn" {
  description = "ARN of the planner Lambda."
  type        = string
}

variable "planner_function_name" {
  description = "Name of the planner Lambda (for its invoke permission)."
  type        = string
}

variable "maximum_retry_attempts" {
  description = "Times EventBridge retries delivering the event to the planner."
  type        = number
  default     = 4

  validation {
    condition     = var.maximum_retry_attempts >= 0 && var.maximum_retry_attempts <= 185
    error_message = "maximum_retry_attempts must be between 0 and 185."
  }
}

variable "maximum_event_age_seconds" {
  description = "How long EventBridge keeps retrying an undelivered event."
  type        = number
  default     = 3600

  validation {
    condition     = var.maximum_event_age_seconds >= 60 && var.maximum_event_age_seconds <= 86400
    error_message = "maximum_event_age_seconds must be between 60 and 86400."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the schedule DLQ. null: SQS-managed SSE."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
