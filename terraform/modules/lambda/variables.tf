variable "name_prefix" {
  description = "Prefix of the function names: <prefix>-planner and <prefix>-worker."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,55}$", var.name_prefix))
    error_message = "name_prefix must be 1-55 letters, digits, '_' or '-' (Lambda names allow 64 characters)."
  }
}

variable "planner_zip_path" {
  description = "Zip of the planner Lambda (a `bootstrap` built from bottlesync-planner-lambda; scripts/package.sh writes it). null: the package is in S3 (package_s3_bucket, planner_s3_key)."
  type        = string
  default     = null

  validation {
    condition     = var.planner_zip_path == null ? true : fileexists(var.planner_zip_path)
    error_message = "planner_zip_path: no such file. Build the zips with scripts/package.sh in a clone of bottlesync (it writes terraform/dist/bottlesync-planner-lambda.zip) and pass its path, or upload it to S3 and pass package_s3_bucket and planner_s3_key (the root module's lambda_package_s3_bucket and planner_package_s3_key) instead."
  }

  validation {
    condition     = (var.planner_zip_path == null) != (var.package_s3_bucket == null || var.planner_s3_key == null)
    error_message = "The planner's package: give planner_zip_path, or package_s3_bucket and planner_s3_key, exactly one of the two."
  }
}

variable "worker_zip_path" {
  description = "Zip of the worker Lambda (a `bootstrap` built from bottlesync-worker-lambda; scripts/package.sh writes it). null: the package is in S3 (package_s3_bucket, worker_s3_key)."
  type        = string
  default     = null

  validation {
    condition     = var.worker_zip_path == null ? true : fileexists(var.worker_zip_path)
    error_message = "worker_zip_path: no such file. Build the zips with scripts/package.sh in a clone of bottlesync (it writes terraform/dist/bottlesync-worker-lambda.zip) and pass its path, or upload it to S3 and pass package_s3_bucket and worker_s3_key (the root module's lambda_package_s3_bucket and worker_package_s3_key) instead."
  }

  validation {
    condition     = (var.worker_zip_path == null) != (var.package_s3_bucket == null || var.worker_s3_key == null)
    error_message = "The worker's package: give worker_zip_path, or package_s3_bucket and worker_s3_key, exactly one of the two."
  }
}

variable "package_s3_bucket" {
  description = "Bucket holding the Lambda zips (same region as the functions), for a module used without local files. null: the zip paths are used."
  type        = string
  default     = null
}

variable "planner_s3_key" {
  description = "Key of the planner zip in package_s3_bucket."
  type        = string
  default     = null
}

variable "worker_s3_key" {
  description = "Key of the worker zip in package_s3_bucket."
  type        = string
  default     = null
}

variable "planner_s3_object_version" {
  description = "Object version of the planner zip (versioned buckets): a new version redeploys the function. null: the latest, redeployed when the key changes."
  type        = string
  default     = null
}

variable "worker_s3_object_version" {
  description = "Object version of the worker zip (versioned buckets): a new version redeploys the function. null: the latest, redeployed when the key changes."
  type        = string
  default     = null
}

variable "planner_role_arn" {
  description = "Execution role of the planner function."
  type        = string
}

variable "worker_role_arn" {
  description = "Execution role of the worker function."
  type        = string
}

variable "planner_environment" {
  description = "Environment of the planner function (the BOTTLESYNC_* settings)."
  type        = map(string)
}

variable "portable_ruby" {
  description = "Portable Ruby the planner mirrors, added to the planner's environment as BOTTLESYNC_PORTABLE_RUBY: \"auto\" (the two newest versions), a version such as \"4.0.6\", or \"off\"."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "off"], var.portable_ruby) || can(regex("^[0-9]+(\\.[0-9]+)*(_[0-9]+)?$", var.portable_ruby))
    error_message = "portable_ruby must be \"auto\", \"off\" or a Portable Ruby version such as 4.0.6."
  }
}

variable "worker_environment" {
  description = "Environment of the worker function (the BOTTLESYNC_* settings)."
  type        = map(string)
}

variable "architecture" {
  description = "Instruction set of both functions; the zips must be built for it."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "planner_timeout_seconds" {
  description = "Timeout of the planner (index download, sizing, enqueueing)."
  type        = number
  default     = 900

  validation {
    condition     = var.planner_timeout_seconds >= 1 && var.planner_timeout_seconds <= 900
    error_message = "planner_timeout_seconds must be between 1 and 900."
  }
}

variable "worker_timeout_seconds" {
  description = "Timeout of the worker. The Lambda queue's visibility timeout must be at least 6x this (the queues module does that)."
  type        = number
  default     = 900

  validation {
    condition     = var.worker_timeout_seconds >= 1 && var.worker_timeout_seconds <= 900
    error_message = "worker_timeout_seconds must be between 1 and 900."
  }
}

variable "planner_memory_mb" {
  description = "Memory of the planner function."
  type        = number
  default     = 1024

  validation {
    condition     = var.planner_memory_mb >= 128 && var.planner_memory_mb <= 10240
    error_message = "planner_memory_mb must be between 128 and 10240."
  }
}

variable "worker_memory_mb" {
  description = "Memory of the worker function (also buys CPU and network bandwidth)."
  type        = number
  default     = 1024

  validation {
    condition     = var.worker_memory_mb >= 128 && var.worker_memory_mb <= 10240
    error_message = "worker_memory_mb must be between 128 and 10240."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  }
}

variable "application_log_level" {
  description = "Lowest application log level Lambda keeps (JSON log format)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.application_log_level)
    error_message = "application_log_level must be TRACE, DEBUG, INFO, WARN, ERROR or FATAL."
  }
}

variable "queue_arn" {
  description = "ARN of the Lambda queue the worker consumes."
  type        = string
}

variable "enable_event_source_mapping" {
  description = "Connect the worker to the Lambda queue. false only for moto, which would try to run the function in a container on every message."
  type        = bool
  default     = true
}

variable "batch_size" {
  description = "Messages (bottles) per worker invocation."
  type        = number
  default     = 1

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10
    error_message = "batch_size must be between 1 and 10."
  }
}

variable "maximum_batching_window_seconds" {
  description = "Seconds the event source may wait to fill a batch."
  type        = number
  default     = 0

  validation {
    condition     = var.maximum_batching_window_seconds >= 0 && var.maximum_batching_window_seconds <= 300
    error_message = "maximum_batching_window_seconds must be between 0 and 300."
  }
}

variable "maximum_concurrency" {
  description = "Most worker invocations the SQS event source runs at once (fan-out cap, and the load on the registry)."
  type        = number
  default     = 20

  validation {
    condition     = var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000
    error_message = "maximum_concurrency must be between 2 and 1000 (an SQS event source limit)."
  }
}

variable "planner_reserved_concurrency" {
  description = "Reserved concurrency of the planner. null: none (reserving fails on accounts at the default limit of 10)."
  type        = number
  default     = null
}

variable "planner_async_retry_attempts" {
  description = "Times Lambda retries a failed asynchronous planner invocation (0-2). A retry resumes the run the failed attempt started."
  type        = number
  default     = 2

  validation {
    condition     = contains([0, 1, 2], var.planner_async_retry_attempts)
    error_message = "planner_async_retry_attempts must be 0, 1 or 2 (Lambda's limit)."
  }
}

variable "planner_async_max_event_age_seconds" {
  description = "How long Lambda keeps retrying an asynchronous planner invocation (60-21600 s); older events go to the planner's DLQ. Long enough for both retries after a planner that ran to its timeout."
  type        = number
  default     = 3600

  validation {
    condition     = var.planner_async_max_event_age_seconds >= 60 && var.planner_async_max_event_age_seconds <= 21600
    error_message = "planner_async_max_event_age_seconds must be between 60 and 21600 (Lambda's limits)."
  }
}

variable "planner_dead_letter_arn" {
  description = "SQS queue for planner invocations that failed after Lambda's asynchronous retries (the schedule's DLQ). null: none."
  type        = string
  default     = null
}

variable "tracing_mode" {
  description = "X-Ray tracing of both functions: PassThrough (no traces unless the caller samples) or Active (needs xray:PutTraceSegments on the roles)."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be PassThrough or Active."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the log groups and the functions' environment. null: AWS-managed encryption."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
