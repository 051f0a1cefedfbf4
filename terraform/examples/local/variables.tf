variable "moto_endpoint" {
  description = "URL of moto_server (every AWS service except DynamoDB), e.g. http://127.0.0.1:5000."
  type        = string

  validation {
    condition     = can(regex("^https?://[^ /]+/?$", var.moto_endpoint))
    error_message = "moto_endpoint must be a base URL such as http://127.0.0.1:5000."
  }
}

variable "moto_dynamodb_endpoint" {
  description = "URL of the moto_server serving DynamoDB (loadtest/moto_serial.py: moto's conditional writes are not atomic under concurrency). null: moto_endpoint."
  type        = string
  default     = null
}

variable "environment" {
  description = "Name of this stack (part of every resource name)."
  type        = string
  default     = "local"
}

variable "s3_bucket_name" {
  description = "The mirror bucket."
  type        = string
  default     = "bottlesync-local-mirror"
}

variable "mirror_prefix" {
  description = "Key prefix of the mirror."
  type        = string
  default     = "homebrew"
}

variable "api_url" {
  description = "Homebrew API base (the bottlesync-fixture stand-in)."
  type        = string
}

variable "size_threshold_gb" {
  description = "Runs at or above this many GB go to the ECS queue."
  type        = number
  default     = 20
}

variable "slack_webhook_url" {
  description = "Webhook receiver standing in for Slack; null: notifications off."
  type        = string
  default     = null
  sensitive   = true
}

variable "planner_zip_path" {
  description = "Planner Lambda zip (moto stores it; it never runs)."
  type        = string
}

variable "worker_zip_path" {
  description = "Worker Lambda zip (moto stores it; it never runs)."
  type        = string
}

variable "worker_image" {
  description = "ECS worker image (moto registers it; no task runs)."
  type        = string
  default     = "bottlesync-worker:local"
}

# What moto cannot apply (see README.md): each is covered by terraform
# validate, terraform test and checkov instead.

variable "enable_redrive_allow_policy" {
  description = "The DLQ's redrive-allow policy (moto: the provider waits for it forever)."
  type        = bool
  default     = false
}

variable "enable_ecs_autoscaling" {
  description = "Queue-depth scaling of the ECS service (moto: the scalable target never finishes)."
  type        = bool
  default     = false
}

variable "enable_event_source_mapping" {
  description = "The worker Lambda's SQS event source (moto would try to run the function in a container for every message)."
  type        = bool
  default     = false
}

variable "enforce_tls" {
  description = "TLS-only bucket policies (moto serves plain HTTP and enforces bucket policies: every request would be denied)."
  type        = bool
  default     = false
}
