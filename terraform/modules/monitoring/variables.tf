variable "name_prefix" {
  description = "Prefix of the dashboard, alarm and rule names."
  type        = string
}

variable "alarm_topic_arn" {
  description = "SNS topic the alarms and ECS task-failure events go to."
  type        = string
}

variable "lambda_queue_name" {
  description = "Name of the Lambda queue."
  type        = string
}

variable "ecs_queue_name" {
  description = "Name of the ECS queue."
  type        = string
}

variable "dlq_name" {
  description = "Name of the work queues' DLQ."
  type        = string
}

variable "schedule_dlq_name" {
  description = "Name of the schedule's DLQ (undelivered schedule events, failed planner invocations)."
  type        = string
}

variable "planner_function_name" {
  description = "Name of the planner Lambda."
  type        = string
}

variable "worker_function_name" {
  description = "Name of the worker Lambda."
  type        = string
}

variable "ecs_cluster_name" {
  description = "Name of the ECS cluster."
  type        = string
}

variable "ecs_cluster_arn" {
  description = "ARN of the ECS cluster (task-failure events)."
  type        = string
}

variable "ecs_service_name" {
  description = "Name of the ECS worker service."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the fleet's Embedded Metric Format metrics (core::metrics::NAMESPACE)."
  type        = string
  default     = "bottlesync"
}

variable "environment" {
  description = "Value of the EMF metrics' one dimension, Environment (BOTTLESYNC_ENVIRONMENT)."
  type        = string
}

variable "oldest_message_age_alarm_seconds" {
  description = "Alarm when a work queue's oldest message is older than this (a stuck or starved fleet)."
  type        = number
  default     = 21600

  validation {
    condition     = var.oldest_message_age_alarm_seconds >= 300
    error_message = "oldest_message_age_alarm_seconds must be >= 300."
  }
}

variable "worker_error_threshold" {
  description = "Alarm when the worker Lambda reports more errors than this in 5 minutes (records it reports as failed are retried by SQS and are not errors)."
  type        = number
  default     = 0

  validation {
    condition     = var.worker_error_threshold >= 0
    error_message = "worker_error_threshold must be >= 0."
  }
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
