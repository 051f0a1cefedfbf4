terraform {
  # 1.11: write-only attributes (the Slack webhook never enters the state).
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.95, < 6.0"
    }
  }

  # Keep the state in S3 for a real deployment, e.g.:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "bottlesync/terraform.tfstate"
  #   region       = "us-east-1"
  #   use_lockfile = true
  # }
}
