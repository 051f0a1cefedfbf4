terraform {
  # 1.11: write-only attributes (the Slack webhook never enters the state).
  required_version = ">= 1.11"

  # No provider block here: the caller configures the provider (see
  # examples/complete for region, default tags and a remote-state backend).
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.95, < 6.0"
    }
  }
}
