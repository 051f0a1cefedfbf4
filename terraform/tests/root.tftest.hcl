# The seed design's variables keep their names and meaning (wiring.tftest.hcl
# checks every setting; examples/complete/tests plans terraform.tfvars.example).

mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b"] }
  }
}

variables {
  # Any existing file: the mock provider never unzips it.
  planner_zip_path = "main.tf"
  worker_zip_path  = "main.tf"
}

run "seed_variables_reach_the_functions" {
  command = plan

  variables {
    s3_bucket_name            = "seed-mirror"
    worker_image              = "ghcr.io/example/bottlesync:1.0.0"
    environment               = "staging"
    size_threshold_gb         = 7
    schedule_expression       = "cron(30 4 ? * SAT *)"
    external_hash_file_url    = "https://mirror.example/bottles_hash.json"
    external_hash_file_s3_key = ""
  }

  assert {
    condition     = output.schedule_expression == "cron(30 4 ? * SAT *)"
    error_message = "schedule_expression reaches the rule"
  }
  assert {
    condition     = output.ecs_cluster_name == "bottlesync-staging" && output.bucket == "seed-mirror"
    error_message = "environment names the resources, s3_bucket_name the bucket"
  }
}

run "environment_defaults_to_prod" {
  command = plan

  variables {
    s3_bucket_name = "seed-mirror"
    worker_image   = "ghcr.io/example/bottlesync:1.0.0"
  }

  assert {
    condition     = output.ecs_cluster_name == "bottlesync-prod"
    error_message = "environment defaults to prod"
  }
}

# A remote module source has no terraform/dist: with the zips in S3 the plan
# needs no local file (without lambda_package_s3_bucket this plan fails on
# the missing dist/ zips).
run "lambda_packages_from_s3" {
  command = plan

  variables {
    s3_bucket_name                   = "seed-mirror"
    worker_image                     = "ghcr.io/example/bottlesync:1.0.0"
    planner_zip_path                 = null
    worker_zip_path                  = null
    lambda_package_s3_bucket         = "artifacts-123456789012"
    worker_package_s3_object_version = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
  }
}

# An existing VPC: no network is created, the tasks run in the given subnets
# with a created egress-only security group, or the given ones.
run "an_existing_vpc" {
  command = plan

  variables {
    s3_bucket_name = "seed-mirror"
    worker_image   = "ghcr.io/example/bottlesync:1.0.0"
    vpc_id         = "vpc-0123456789abcdef0"
    subnet_ids     = ["subnet-a", "subnet-b"]
  }

  assert {
    condition     = length(module.network) == 0 && length(aws_security_group.tasks) == 1 && aws_security_group.tasks[0].vpc_id == "vpc-0123456789abcdef0"
    error_message = "no VPC created; one security group in the given VPC"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.tasks_https[0].from_port == 443 && aws_vpc_security_group_egress_rule.tasks_https[0].to_port == 443
    error_message = "outbound HTTPS only"
  }
}

run "an_existing_vpc_with_its_security_groups" {
  command = plan

  variables {
    s3_bucket_name     = "seed-mirror"
    worker_image       = "ghcr.io/example/bottlesync:1.0.0"
    vpc_id             = "vpc-0123456789abcdef0"
    subnet_ids         = ["subnet-a"]
    security_group_ids = ["sg-0123"]
  }

  assert {
    condition     = length(module.network) == 0 && length(aws_security_group.tasks) == 0
    error_message = "the given security groups, none created"
  }
}

run "subnets_without_a_vpc_are_refused" {
  command = plan

  variables {
    s3_bucket_name = "seed-mirror"
    worker_image   = "ghcr.io/example/bottlesync:1.0.0"
    subnet_ids     = ["subnet-a"]
  }

  expect_failures = [var.subnet_ids]
}

run "the_module_makes_its_network_by_default" {
  command = plan

  variables {
    s3_bucket_name = "seed-mirror"
    worker_image   = "ghcr.io/example/bottlesync:1.0.0"
  }

  assert {
    condition     = length(module.network) == 1 && length(aws_security_group.tasks) == 0
    error_message = "a VPC of its own unless one is given"
  }
}


# archive_days reaches the storage module: the dated folders expire after
# 30 days by default (each bottle stored once, under bottles/), never with 0.
run "the_dated_archive_expires_after_archive_days" {
  command = plan

  variables {
    s3_bucket_name = "seed-mirror"
    worker_image   = "ghcr.io/example/bottlesync:1.0.0"
  }

  assert {
    condition     = module.storage.archive_days == 30 && contains(module.storage.lifecycle_rule_ids, "expire-dated-archive")
    error_message = "by default the dated archive expires after 30 days"
  }
}

run "archive_days_reaches_the_storage_module" {
  command = plan

  variables {
    s3_bucket_name = "seed-mirror"
    worker_image   = "ghcr.io/example/bottlesync:1.0.0"
    archive_days   = 90
  }

  assert {
    condition     = module.storage.archive_days == 90
    error_message = "archive_days = 90 reaches the archive rule"
  }
}

run "archive_days_zero_keeps_the_archive" {
  command = plan

  variables {
    s3_bucket_name = "seed-mirror"
    worker_image   = "ghcr.io/example/bottlesync:1.0.0"
    archive_days   = 0
  }

  assert {
    condition     = module.storage.archive_days == null && !contains(module.storage.lifecycle_rule_ids, "expire-dated-archive")
    error_message = "archive_days = 0: no archive rule"
  }
}

run "rejects_negative_archive_days" {
  command = plan

  variables {
    s3_bucket_name = "seed-mirror"
    worker_image   = "ghcr.io/example/bottlesync:1.0.0"
    archive_days   = -1
  }

  expect_failures = [var.archive_days]
}
