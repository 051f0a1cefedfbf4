variable "name_prefix" {
  description = "Prefix of the secret and topic names."
  type        = string
}

variable "enable_slack" {
  description = "Post run summaries to Slack. The webhook comes from slack_secret_arn (an existing secret) or slack_webhook_url (stored in a new secret)."
  type        = bool
  default     = false
}

variable "slack_webhook_url" {
  description = "Slack incoming webhook URL, stored in a new Secrets Manager secret (never in Lambda or task environment). Ignored when slack_secret_arn is set."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.slack_webhook_url == null || can(regex("^https?://[^ ]+$", coalesce(var.slack_webhook_url, "x")))
    error_message = "slack_webhook_url must be an http(s) URL."
  }
}

variable "slack_webhook_url_version" {
  description = "Bump to write a changed slack_webhook_url to the secret (the URL is write-only: Terraform keeps it out of the state and cannot see it change)."
  type        = number
  default     = 1
}

variable "slack_secret_arn" {
  description = "ARN of an existing secret holding the webhook (the plain URL, or JSON with webhook_url). null: create one from slack_webhook_url."
  type        = string
  default     = null

  validation {
    condition     = var.slack_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", coalesce(var.slack_secret_arn, "x")))
    error_message = "slack_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can be restored (0: delete at once, for throwaway stacks)."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "alarm_emails" {
  description = "Email addresses subscribed to the alarm topic (each must confirm by email)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", e))])
    error_message = "alarm_emails must be email addresses."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the secret and the alarm topic (its key policy must let cloudwatch.amazonaws.com and events.amazonaws.com use it). null: AWS-managed keys for the secret, no encryption for the topic."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
