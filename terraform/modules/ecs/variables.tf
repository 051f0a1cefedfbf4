variable "cluster_name" {
  description = "Name of the ECS cluster (BOTTLESYNC_ECS_CLUSTER)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.cluster_name))
    error_message = "cluster_name must be 1-255 letters, digits, '_' or '-'."
  }
}

variable "service_name" {
  description = "Name of the worker service (BOTTLESYNC_ECS_SERVICE)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.service_name))
    error_message = "service_name must be 1-255 letters, digits, '_' or '-'."
  }
}

variable "image" {
  description = "Worker container image (built from the repository's Dockerfile), e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/bottlesync:1.0.0."
  type        = string

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must not be empty."
  }
}

variable "worker_concurrency" {
  description = "Bottles one task works on at once (`bottlesync work --concurrency`)."
  type        = number
  default     = 4

  validation {
    condition     = var.worker_concurrency >= 1 && var.worker_concurrency <= 256 && floor(var.worker_concurrency) == var.worker_concurrency
    error_message = "worker_concurrency must be a whole number between 1 and 256."
  }
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  description = "Task memory in MiB (must suit cpu on Fargate)."
  type        = number
  default     = 2048

  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory must be between 512 and 122880 MiB."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the task; the image must be built for it."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "task_role_arn" {
  description = "Role the worker process runs with."
  type        = string
}

variable "execution_role_arn" {
  description = "Role ECS uses to pull the image and write logs."
  type        = string
}

variable "environment" {
  description = "The task's BOTTLESYNC_* settings (BOTTLESYNC_LOG_GROUP and BOTTLESYNC_VISIBILITY_TIMEOUT are added here)."
  type        = map(string)
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout of the ECS queue; passed to the worker as BOTTLESYNC_VISIBILITY_TIMEOUT (they must be equal)."
  type        = number

  validation {
    condition     = var.visibility_timeout_seconds >= 30
    error_message = "visibility_timeout_seconds must be >= 30."
  }
}

variable "queue_name" {
  description = "Name of the ECS queue (scaling metrics)."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the tasks."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must name at least one subnet."
  }
}

variable "security_group_ids" {
  description = "Security groups of the tasks."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give tasks public IPs (true for public subnets without NAT, the default network)."
  type        = bool
  default     = true
}

variable "fargate_spot_weight" {
  description = "Relative share of tasks on FARGATE_SPOT (about 70% cheaper; a reclaimed task gets SIGTERM and its messages return to the queue)."
  type        = number
  default     = 3

  validation {
    condition     = var.fargate_spot_weight >= 0 && var.fargate_spot_weight <= 1000
    error_message = "fargate_spot_weight must be between 0 and 1000."
  }

  validation {
    condition     = var.cpu_architecture == "X86_64" || var.fargate_spot_weight == 0
    error_message = "Fargate Spot runs X86_64 tasks only: with cpu_architecture = \"ARM64\" set fargate_spot_weight = 0 (ARM64 tasks placed on Spot never start)."
  }
}

variable "fargate_base" {
  description = "Tasks that always run on on-demand FARGATE before the weights apply (the task that wakes the service from zero): a Spot shortage never leaves a run without a worker."
  type        = number
  default     = 1

  validation {
    condition     = var.fargate_base >= 0 && var.fargate_base <= 100000
    error_message = "fargate_base must be between 0 and 100000."
  }
}

variable "fargate_weight" {
  description = "Relative share of tasks on on-demand FARGATE."
  type        = number
  default     = 1

  validation {
    condition     = var.fargate_weight >= 0 && var.fargate_weight <= 1000
    error_message = "fargate_weight must be between 0 and 1000."
  }

  validation {
    condition     = var.fargate_weight + var.fargate_spot_weight > 0
    error_message = "fargate_weight and fargate_spot_weight cannot both be 0."
  }
}

variable "log_retention_days" {
  description = "Retention of the task log group."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the log group. null: AWS-managed encryption."
  type        = string
  default     = null
}

variable "enable_autoscaling" {
  description = "Create the queue-depth scaling (target, policies, alarms). false only for moto, where the scalable target never finishes."
  type        = bool
  default     = true
}

variable "max_tasks" {
  description = "Most worker tasks queue-depth scaling starts."
  type        = number
  default     = 10

  validation {
    condition     = var.max_tasks >= 1 && var.max_tasks <= 1000
    error_message = "max_tasks must be between 1 and 1000."
  }
}

variable "wake_tasks" {
  description = "Tasks started when messages wait and the service is at zero."
  type        = number
  default     = 1

  validation {
    condition     = var.wake_tasks >= 1
    error_message = "wake_tasks must be >= 1."
  }
}

variable "target_backlog_per_task" {
  description = "Target of the tracking policy: visible messages per running task."
  type        = number
  default     = 50

  validation {
    condition     = var.target_backlog_per_task > 0
    error_message = "target_backlog_per_task must be > 0."
  }
}

variable "scale_in_idle_minutes" {
  description = "Minutes the queue must be empty (visible and in flight) before the service scales to zero."
  type        = number
  default     = 15

  validation {
    condition     = var.scale_in_idle_minutes >= 1 && var.scale_in_idle_minutes <= 1440
    error_message = "scale_in_idle_minutes must be between 1 and 1440."
  }
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
