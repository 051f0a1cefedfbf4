variable "name_prefix" {
  description = "Prefix of the Name tags."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) <= 24, false)
    error_message = "vpc_cidr must be an IPv4 CIDR block of /24 or larger."
  }
}

variable "az_count" {
  description = "Availability zones to spread the subnets over."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 1 && var.az_count <= 6
    error_message = "az_count must be between 1 and 6."
  }
}

variable "availability_zones" {
  description = "Availability zones to use. Empty: the first az_count zones of the region."
  type        = list(string)
  default     = []
}

variable "enable_nat_gateway" {
  description = "Also create private subnets with NAT gateways for the tasks. Off by default: a NAT gateway costs more than the rest of the system, and tasks in public subnets with public IPs and no inbound rules need none."
  type        = bool
  default     = false
}

variable "single_nat_gateway" {
  description = "With enable_nat_gateway: one NAT gateway for all zones (cheaper) instead of one per zone (survives a zone outage)."
  type        = bool
  default     = true
}

variable "egress_ports" {
  description = "TCP ports the tasks may connect out to (HTTPS: Homebrew, ghcr.io and the AWS APIs)."
  type        = list(number)
  default     = [443]

  validation {
    condition     = length(var.egress_ports) > 0 && alltrue([for p in var.egress_ports : p >= 1 && p <= 65535])
    error_message = "egress_ports must list ports between 1 and 65535."
  }
}

variable "flow_log_destination_arn" {
  description = "S3 bucket ARN (or CloudWatch log group ARN with flow_log_destination_type = cloud-watch-logs) for VPC flow logs. null: no flow logs."
  type        = string
  default     = null
}

variable "flow_log_iam_role_arn" {
  description = "Role VPC flow logs use to write to CloudWatch Logs (only with flow_log_destination_type = cloud-watch-logs)."
  type        = string
  default     = null
}

variable "flow_log_destination_type" {
  description = "s3 or cloud-watch-logs."
  type        = string
  default     = "s3"

  validation {
    condition     = contains(["s3", "cloud-watch-logs"], var.flow_log_destination_type)
    error_message = "flow_log_destination_type must be s3 or cloud-watch-logs."
  }
}

variable "tags" {
  description = "Tags of every resource that takes tags (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
