variable "aws_region" {
  description = "AWS region of the deployment."
  type        = string
  default     = "us-east-1"
}

variable "default_tags" {
  description = "Tags added to every resource (Project and Environment are always set)."
  type        = map(string)
  default     = {}
}

variable "environment" {
  description = "Name of this deployment (prod, staging, ...): part of every resource name."
  type        = string
  default     = "prod"
}

variable "s3_bucket_name" {
  description = "The mirror bucket (created here; globally unique)."
  type        = string
}

variable "worker_image" {
  description = "Container image of the ECS worker, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/bottlesync:1.0.0."
  type        = string
}

variable "planner_zip_path" {
  description = "Zip of the planner Lambda. null: terraform/dist/bottlesync-planner-lambda.zip (scripts/package.sh)."
  type        = string
  default     = null
}

variable "worker_zip_path" {
  description = "Zip of the worker Lambda. null: terraform/dist/bottlesync-worker-lambda.zip (scripts/package.sh)."
  type        = string
  default     = null
}

variable "lambda_package_s3_bucket" {
  description = "Bucket holding the Lambda zips (for the module from a remote source, which has no terraform/dist). null: the zip paths."
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

variable "slack_webhook_url" {
  description = "Slack incoming webhook (pass it as TF_VAR_slack_webhook_url); stored write-only in a Secrets Manager secret."
  type        = string
  default     = null
  sensitive   = true
}

variable "slack_secret_arn" {
  description = "An existing Secrets Manager secret holding the webhook (instead of slack_webhook_url)."
  type        = string
  default     = null
}

variable "alarm_emails" {
  description = "Email addresses for the alarms (each confirms its subscription by email)."
  type        = list(string)
  default     = []
}

variable "enable_cdn" {
  description = "Serve the mirror to brew clients through CloudFront (the module's enable_cdn); then output homebrew_client_env gives the clients' settings."
  type        = bool
  default     = false
}
